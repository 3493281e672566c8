#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <inttypes.h>

#include <glib/gi18n.h>
#include <string.h>

#include "lode-checkpoint.h"
#include "lode-pickle.h"

/* Bounds that keep a hostile pickle from exhausting memory. */
#define MAX_STACK         1000000
#define MAX_MARKS         1000000
#define MAX_MEMO          1000000
#define MAX_GLOBAL_NAME   256
#define MAX_ELEMENTS      (G_GINT64_CONSTANT (1) << 40)

struct _LodePickle {
  GPtrArray *objects;   /* every object made, freed together */
  LodePickleObj *root;
};

typedef struct {
  const guint8 *data;
  gsize len;
  gsize pos;
  gsize op_pos;         /* offset of the opcode being run */
  guint8 op;
  GPtrArray *stack;
  GArray *marks;        /* stack lengths at each MARK */
  GHashTable *memo;     /* index -> object */
  LodePickle *pickle;
} Unpickler;

static const struct {
  const char *module;
  const char *name;
  const char *qualname;
  LodePickleGlobalKind kind;
  LodeDType dtype;
} allowlist[] = {
  { "collections", "OrderedDict", "collections.OrderedDict", LODE_PICKLE_GLOBAL_ORDERED_DICT, 0 },
  { "torch._utils", "_rebuild_tensor_v2", "torch._utils._rebuild_tensor_v2", LODE_PICKLE_GLOBAL_REBUILD_TENSOR_V2, 0 },
  { "torch._utils", "_rebuild_parameter", "torch._utils._rebuild_parameter", LODE_PICKLE_GLOBAL_REBUILD_PARAMETER, 0 },
  { "torch", "FloatStorage", "torch.FloatStorage", LODE_PICKLE_GLOBAL_STORAGE_TYPE, LODE_DTYPE_FLOAT32 },
  { "torch", "HalfStorage", "torch.HalfStorage", LODE_PICKLE_GLOBAL_STORAGE_TYPE, LODE_DTYPE_FLOAT16 },
  { "torch", "BFloat16Storage", "torch.BFloat16Storage", LODE_PICKLE_GLOBAL_STORAGE_TYPE, LODE_DTYPE_BFLOAT16 },
  { "torch", "DoubleStorage", "torch.DoubleStorage", LODE_PICKLE_GLOBAL_STORAGE_TYPE, LODE_DTYPE_FLOAT64 },
  { "torch", "LongStorage", "torch.LongStorage", LODE_PICKLE_GLOBAL_STORAGE_TYPE, LODE_DTYPE_INT64 },
  { "torch", "IntStorage", "torch.IntStorage", LODE_PICKLE_GLOBAL_STORAGE_TYPE, LODE_DTYPE_INT32 },
  { "torch", "ShortStorage", "torch.ShortStorage", LODE_PICKLE_GLOBAL_STORAGE_TYPE, LODE_DTYPE_INT16 },
  { "torch", "CharStorage", "torch.CharStorage", LODE_PICKLE_GLOBAL_STORAGE_TYPE, LODE_DTYPE_INT8 },
  { "torch", "ByteStorage", "torch.ByteStorage", LODE_PICKLE_GLOBAL_STORAGE_TYPE, LODE_DTYPE_UINT8 },
  { "torch", "BoolStorage", "torch.BoolStorage", LODE_PICKLE_GLOBAL_STORAGE_TYPE, LODE_DTYPE_BOOL },
};

/* Names of the opcodes of pickle protocols 0 to 5, for messages. */
static const char *
opcode_name (guint8 op)
{
  switch (op)
    {
    case '(': return "MARK";
    case '.': return "STOP";
    case '0': return "POP";
    case '1': return "POP_MARK";
    case '2': return "DUP";
    case 'F': return "FLOAT";
    case 'I': return "INT";
    case 'J': return "BININT";
    case 'K': return "BININT1";
    case 'L': return "LONG";
    case 'M': return "BININT2";
    case 'N': return "NONE";
    case 'P': return "PERSID";
    case 'Q': return "BINPERSID";
    case 'R': return "REDUCE";
    case 'S': return "STRING";
    case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING";
    case 'V': return "UNICODE";
    case 'X': return "BINUNICODE";
    case 'a': return "APPEND";
    case 'b': return "BUILD";
    case 'c': return "GLOBAL";
    case 'd': return "DICT";
    case '}': return "EMPTY_DICT";
    case 'e': return "APPENDS";
    case 'g': return "GET";
    case 'h': return "BINGET";
    case 'i': return "INST";
    case 'j': return "LONG_BINGET";
    case 'l': return "LIST";
    case ']': return "EMPTY_LIST";
    case 'o': return "OBJ";
    case 'p': return "PUT";
    case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT";
    case 's': return "SETITEM";
    case 't': return "TUPLE";
    case ')': return "EMPTY_TUPLE";
    case 'u': return "SETITEMS";
    case 'G': return "BINFLOAT";
    case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";
    case 0x80: return "PROTO";
    case 0x81: return "NEWOBJ";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";
    case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";
    case 0x8a: return "LONG1";
    case 0x8b: return "LONG4";
    case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8";
    case 0x8e: return "BINBYTES8";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    case 0x92: return "NEWOBJ_EX";
    case 0x93: return "STACK_GLOBAL";
    case 0x94: return "MEMOIZE";
    case 0x95: return "FRAME";
    case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default: return NULL;
    }
}

static void
obj_free (gpointer data)
{
  LodePickleObj *obj = data;

  switch (obj->kind)
    {
    case LODE_PICKLE_STR:
    case LODE_PICKLE_BYTES:
      g_free (obj->str.data);
      break;
    case LODE_PICKLE_TUPLE:
    case LODE_PICKLE_LIST:
    case LODE_PICKLE_DICT:
      g_ptr_array_unref (obj->items);
      break;
    case LODE_PICKLE_STORAGE:
      g_free (obj->storage.key);
      g_free (obj->storage.location);
      break;
    case LODE_PICKLE_NONE:
    case LODE_PICKLE_BOOL:
    case LODE_PICKLE_INT:
    case LODE_PICKLE_FLOAT:
    case LODE_PICKLE_GLOBAL:
    case LODE_PICKLE_TENSOR:
    default:
      break;
    }
  g_free (obj);
}

static LodePickleObj *
obj_new (Unpickler *u, LodePickleKind kind)
{
  LodePickleObj *obj = g_new0 (LodePickleObj, 1);

  obj->kind = kind;
  if (kind == LODE_PICKLE_TUPLE || kind == LODE_PICKLE_LIST || kind == LODE_PICKLE_DICT)
    obj->items = g_ptr_array_new ();
  g_ptr_array_add (u->pickle->objects, obj);
  return obj;
}

static gboolean
fail (Unpickler *u, GError **error, int code, const char *format, ...) G_GNUC_PRINTF (4, 5);

static gboolean
fail (Unpickler *u, GError **error, int code, const char *format, ...)
{
  g_autofree char *what = NULL;
  const char *name = opcode_name (u->op);
  g_autofree char *opname = name ? g_strdup (name) : g_strdup_printf ("0x%02x", u->op);
  va_list args;

  va_start (args, format);
  what = g_strdup_vprintf (format, args);
  va_end (args);
  /* TRANSLATORS: the first %s says what is wrong, the second names the pickle opcode */
  g_set_error (error, LODE_CHECKPOINT_ERROR, code,
               _("%s (opcode %s at byte %zu of the pickle)"),
               what, opname, u->op_pos);
  return FALSE;
}

static gboolean
need (Unpickler *u, gsize n, GError **error)
{
  if (n > u->len - u->pos)
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("The pickle ends in the middle of an opcode"));
  return TRUE;
}

static guint64
read_le (Unpickler *u, gsize n)
{
  guint64 v = 0;

  for (gsize i = 0; i < n; i++)
    v |= (guint64) u->data[u->pos + i] << (8 * i);
  u->pos += n;
  return v;
}

static gboolean
push (Unpickler *u, LodePickleObj *obj, GError **error)
{
  if (u->stack->len >= MAX_STACK)
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("The pickle stack grows beyond %d items"), MAX_STACK);
  g_ptr_array_add (u->stack, obj);
  return TRUE;
}

static guint
stack_base (Unpickler *u)
{
  return u->marks->len > 0 ? g_array_index (u->marks, guint, u->marks->len - 1) : 0;
}

static LodePickleObj *
pop (Unpickler *u, GError **error)
{
  if (u->stack->len <= stack_base (u))
    {
      fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("The pickle pops from an empty stack"));
      return NULL;
    }
  return g_ptr_array_steal_index (u->stack, u->stack->len - 1);
}

static LodePickleObj *
top (Unpickler *u, GError **error)
{
  if (u->stack->len <= stack_base (u))
    {
      fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("The pickle reads from an empty stack"));
      return NULL;
    }
  return g_ptr_array_index (u->stack, u->stack->len - 1);
}

/* Pops the topmost mark; the items above it stay on the stack, starting
 * at *start. */
static gboolean
pop_mark (Unpickler *u, guint *start, GError **error)
{
  if (u->marks->len == 0)
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("The pickle uses a mark it never set"));
  *start = g_array_index (u->marks, guint, u->marks->len - 1);
  g_array_set_size (u->marks, u->marks->len - 1);
  return TRUE;
}

static gboolean
push_tuple_from (Unpickler *u, guint start, GError **error)
{
  LodePickleObj *tuple = obj_new (u, LODE_PICKLE_TUPLE);

  for (guint i = start; i < u->stack->len; i++)
    g_ptr_array_add (tuple->items, g_ptr_array_index (u->stack, i));
  g_ptr_array_set_size (u->stack, start);
  return push (u, tuple, error);
}

static gboolean
push_string (Unpickler *u, gsize n, gboolean bytes, gboolean text_if_utf8, GError **error)
{
  LodePickleObj *obj;
  const char *p;

  if (!need (u, n, error))
    return FALSE;
  p = (const char *) u->data + u->pos;
  if (!bytes && !g_utf8_validate_len (p, n, NULL))
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("A string in the pickle is not valid UTF-8"));
  if (text_if_utf8)
    bytes = !g_utf8_validate_len (p, n, NULL);
  obj = obj_new (u, bytes ? LODE_PICKLE_BYTES : LODE_PICKLE_STR);
  obj->str.data = g_malloc (n + 1);
  memcpy (obj->str.data, p, n);
  obj->str.data[n] = '\0';
  obj->str.len = n;
  u->pos += n;
  return push (u, obj, error);
}

/* The string opcodes: a little-endian length of 1, 4 or 8 bytes, then
 * the bytes. */
static gboolean
op_sized_string (Unpickler *u, GError **error)
{
  gsize width;
  gboolean bytes, text_if_utf8 = FALSE;
  guint64 n;

  switch (u->op)
    {
    case 0x8c: width = 1; bytes = FALSE; break;
    case 'X':  width = 4; bytes = FALSE; break;
    case 0x8d: width = 8; bytes = FALSE; break;
    case 'C':  width = 1; bytes = TRUE; break;
    case 'B':  width = 4; bytes = TRUE; break;
    case 0x8e: width = 8; bytes = TRUE; break;
    case 'U':  width = 1; bytes = TRUE; text_if_utf8 = TRUE; break;
    default:   width = 4; bytes = TRUE; text_if_utf8 = TRUE; break;  /* 'T' */
    }
  if (!need (u, width, error))
    return FALSE;
  n = read_le (u, width);
  if (u->op == 'T' && n > G_MAXINT32)
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("A string in the pickle has a negative length"));
  return push_string (u, n, bytes, text_if_utf8, error);
}

static gboolean
push_int (Unpickler *u, gint64 v, GError **error)
{
  LodePickleObj *obj = obj_new (u, LODE_PICKLE_INT);

  obj->i = v;
  return push (u, obj, error);
}

/* Little-endian two's complement integer of n bytes (LONG1, LONG4). */
static gboolean
push_long (Unpickler *u, gsize n, GError **error)
{
  guint64 v;

  if (!need (u, n, error))
    return FALSE;
  if (n > 8)
    return fail (u, error, LODE_CHECKPOINT_ERROR_UNSUPPORTED, _("An integer in the pickle has more than 64 bits"));
  if (n == 0)
    return push_int (u, 0, error);
  v = read_le (u, n);
  if (n < 8 && (v >> (8 * n - 1)) & 1)
    v |= G_MAXUINT64 << (8 * n);
  return push_int (u, (gint64) v, error);
}

static gboolean
push_global (Unpickler *u, const char *module, const char *name, GError **error)
{
  for (guint i = 0; i < G_N_ELEMENTS (allowlist); i++)
    if (g_str_equal (module, allowlist[i].module) && g_str_equal (name, allowlist[i].name))
      {
        LodePickleObj *obj = obj_new (u, LODE_PICKLE_GLOBAL);

        obj->global.kind = allowlist[i].kind;
        obj->global.qualname = allowlist[i].qualname;
        obj->global.dtype = allowlist[i].dtype;
        return push (u, obj, error);
      }
  return fail (u, error, LODE_CHECKPOINT_ERROR_UNSAFE,
               _("The pickle names “%s.%s”, which a checkpoint may not use; it was refused and nothing was run"),
               module, name);
}

/* One line of a GLOBAL or INST argument, up to '\n'. */
static char *
read_line (Unpickler *u, GError **error)
{
  gsize limit = MIN (u->len - u->pos, MAX_GLOBAL_NAME + 1);
  const guint8 *p = u->data + u->pos;
  const guint8 *nl = memchr (p, '\n', limit);
  char *line;

  if (nl == NULL)
    {
      fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("A global name in the pickle is cut short or too long"));
      return NULL;
    }
  line = g_strndup ((const char *) p, nl - p);
  u->pos += nl - p + 1;
  for (char *c = line; *c != '\0'; c++)
    if (!g_ascii_isprint (*c))
      {
        g_free (line);
        fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("A global name in the pickle has unprintable characters"));
        return NULL;
      }
  if ((gsize) (nl - p) != strlen (line))
    {
      g_free (line);
      fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("A global name in the pickle has unprintable characters"));
      return NULL;
    }
  return line;
}

static gboolean
op_global (Unpickler *u, gboolean inst, GError **error)
{
  g_autofree char *module = read_line (u, error);
  g_autofree char *name = NULL;

  if (module == NULL)
    return FALSE;
  name = read_line (u, error);
  if (name == NULL)
    return FALSE;
  if (inst)
    {
      /* INST calls the class at once: refuse even allowlisted names. */
      if (!push_global (u, module, name, error))
        return FALSE;
      return fail (u, error, LODE_CHECKPOINT_ERROR_UNSUPPORTED, _("The pickle calls a class"));
    }
  return push_global (u, module, name, error);
}

static gboolean
op_stack_global (Unpickler *u, GError **error)
{
  LodePickleObj *name = pop (u, error);
  LodePickleObj *module = name ? pop (u, error) : NULL;

  if (module == NULL)
    return FALSE;
  if (name->kind != LODE_PICKLE_STR || module->kind != LODE_PICKLE_STR
      || name->str.len > MAX_GLOBAL_NAME || module->str.len > MAX_GLOBAL_NAME
      || strlen (name->str.data) != name->str.len || strlen (module->str.data) != module->str.len)
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("STACK_GLOBAL needs two short strings"));
  return push_global (u, module->str.data, name->str.data, error);
}

static gboolean
memo_put (Unpickler *u, guint64 index, GError **error)
{
  LodePickleObj *obj = top (u, error);

  if (obj == NULL)
    return FALSE;
  if (index > G_MAXUINT32)
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("A memo index in the pickle is too large"));
  if (g_hash_table_size (u->memo) >= MAX_MEMO
      && !g_hash_table_contains (u->memo, GUINT_TO_POINTER ((guint) index)))
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("The pickle memo grows beyond %d items"), MAX_MEMO);
  g_hash_table_insert (u->memo, GUINT_TO_POINTER ((guint) index), obj);
  return TRUE;
}

static gboolean
memo_get (Unpickler *u, guint64 index, GError **error)
{
  LodePickleObj *obj = NULL;

  if (index <= G_MAXUINT32)
    obj = g_hash_table_lookup (u->memo, GUINT_TO_POINTER ((guint) index));
  if (obj == NULL)
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT,
                 _("The pickle reads memo entry %" PRIu64 ", which was never stored"), index);
  return push (u, obj, error);
}

static gboolean
is_int (LodePickleObj *obj)
{
  return obj->kind == LODE_PICKLE_INT;
}

/* ('storage', <storage type>, '<key>', '<location>', <numel>) */
static gboolean
op_binpersid (Unpickler *u, GError **error)
{
  LodePickleObj *pid = pop (u, error);
  LodePickleObj *type, *key, *location, *numel, *storage;

  if (pid == NULL)
    return FALSE;
  if (pid->kind != LODE_PICKLE_TUPLE || pid->items->len != 5)
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("A persistent id in the pickle is not a storage 5-tuple"));
  type = g_ptr_array_index (pid->items, 1);
  key = g_ptr_array_index (pid->items, 2);
  location = g_ptr_array_index (pid->items, 3);
  numel = g_ptr_array_index (pid->items, 4);
  if (((LodePickleObj *) g_ptr_array_index (pid->items, 0))->kind != LODE_PICKLE_STR
      || !g_str_equal (((LodePickleObj *) g_ptr_array_index (pid->items, 0))->str.data, "storage"))
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("A persistent id in the pickle is not a storage"));
  if (type->kind != LODE_PICKLE_GLOBAL || type->global.kind != LODE_PICKLE_GLOBAL_STORAGE_TYPE)
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("A storage in the pickle has no storage type"));
  if (key->kind != LODE_PICKLE_STR || key->str.len == 0 || key->str.len > 64
      || strlen (key->str.data) != key->str.len
      || strchr (key->str.data, '/') != NULL || strchr (key->str.data, '\\') != NULL
      || g_str_equal (key->str.data, ".") || g_str_equal (key->str.data, ".."))
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("A storage key in the pickle is not a plain name"));
  if (location->kind != LODE_PICKLE_STR)
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("A storage location in the pickle is not a string"));
  if (!is_int (numel) || numel->i < 0 || numel->i > MAX_ELEMENTS)
    return fail (u, error, LODE_CHECKPOINT_ERROR_SHAPE, _("A storage in the pickle has an absurd size"));

  storage = obj_new (u, LODE_PICKLE_STORAGE);
  storage->storage.dtype = type->global.dtype;
  storage->storage.key = g_strdup (key->str.data);
  storage->storage.location = g_strdup (location->str.data);
  storage->storage.numel = numel->i;
  return push (u, storage, error);
}

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
 * backward_hooks[, metadata]) */
static gboolean
rebuild_tensor (Unpickler *u, LodePickleObj *args, GError **error)
{
  LodePickleObj *storage, *offset, *size, *stride, *tensor;
  guint64 numel;
  gint64 last;

  if (args->items->len != 6 && args->items->len != 7)
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("_rebuild_tensor_v2 takes 6 or 7 arguments"));
  storage = g_ptr_array_index (args->items, 0);
  offset = g_ptr_array_index (args->items, 1);
  size = g_ptr_array_index (args->items, 2);
  stride = g_ptr_array_index (args->items, 3);
  if (storage->kind != LODE_PICKLE_STORAGE || !is_int (offset)
      || size->kind != LODE_PICKLE_TUPLE || stride->kind != LODE_PICKLE_TUPLE)
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("_rebuild_tensor_v2 has arguments of the wrong kind"));
  if (size->items->len > LODE_TENSOR_MAX_DIMS)
    return fail (u, error, LODE_CHECKPOINT_ERROR_SHAPE, _("A tensor has %u dimensions, more than %d"),
                 size->items->len, LODE_TENSOR_MAX_DIMS);
  if (size->items->len != stride->items->len)
    return fail (u, error, LODE_CHECKPOINT_ERROR_SHAPE, _("A tensor has %u sizes but %u strides"),
                 size->items->len, stride->items->len);

  tensor = obj_new (u, LODE_PICKLE_TENSOR);
  tensor->tensor.storage = storage;
  tensor->tensor.offset = offset->i;
  tensor->tensor.ndim = (int) size->items->len;
  for (int d = 0; d < tensor->tensor.ndim; d++)
    {
      LodePickleObj *sz = g_ptr_array_index (size->items, d);
      LodePickleObj *st = g_ptr_array_index (stride->items, d);

      if (!is_int (sz) || !is_int (st))
        return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("A tensor size or stride is not an integer"));
      if (sz->i < 0 || st->i < 0)
        return fail (u, error, LODE_CHECKPOINT_ERROR_SHAPE, _("A tensor has a negative size or stride"));
      tensor->tensor.size[d] = sz->i;
      tensor->tensor.stride[d] = st->i;
    }
  if (!lode_shape_numel (tensor->tensor.ndim, tensor->tensor.size, MAX_ELEMENTS, &numel))
    return fail (u, error, LODE_CHECKPOINT_ERROR_SHAPE, _("A tensor has an absurd shape (more than 2^40 elements)"));
  if (offset->i < 0 || offset->i > storage->storage.numel)
    return fail (u, error, LODE_CHECKPOINT_ERROR_SHAPE, _("A tensor starts outside its storage"));
  if (numel > 0)
    {
      /* the last element it reaches must lie inside the storage */
      last = offset->i;
      for (int d = 0; d < tensor->tensor.ndim; d++)
        {
          gint64 n = tensor->tensor.size[d] - 1;
          gint64 st = tensor->tensor.stride[d];

          if (n > 0 && (st > (storage->storage.numel - last) / n))
            return fail (u, error, LODE_CHECKPOINT_ERROR_SHAPE,
                         _("A tensor reaches beyond its storage of %" PRId64 " elements"),
                         storage->storage.numel);
          last += n * st;
        }
      if (last >= storage->storage.numel)
        return fail (u, error, LODE_CHECKPOINT_ERROR_SHAPE,
                     _("A tensor reaches beyond its storage of %" PRId64 " elements"),
                     storage->storage.numel);
    }
  return push (u, tensor, error);
}

static gboolean
op_reduce (Unpickler *u, GError **error)
{
  LodePickleObj *args = pop (u, error);
  LodePickleObj *callable = args ? pop (u, error) : NULL;

  if (callable == NULL)
    return FALSE;
  if (callable->kind != LODE_PICKLE_GLOBAL || args->kind != LODE_PICKLE_TUPLE)
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("REDUCE needs a global and an argument tuple"));
  switch (callable->global.kind)
    {
    case LODE_PICKLE_GLOBAL_ORDERED_DICT:
      if (args->items->len != 0)
        return fail (u, error, LODE_CHECKPOINT_ERROR_UNSUPPORTED, _("OrderedDict is built with arguments"));
      return push (u, obj_new (u, LODE_PICKLE_DICT), error);
    case LODE_PICKLE_GLOBAL_REBUILD_TENSOR_V2:
      return rebuild_tensor (u, args, error);
    case LODE_PICKLE_GLOBAL_REBUILD_PARAMETER:
      {
        LodePickleObj *data = args->items->len >= 1 ? g_ptr_array_index (args->items, 0) : NULL;

        if (args->items->len != 3 || data->kind != LODE_PICKLE_TENSOR)
          return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("_rebuild_parameter needs a tensor"));
        return push (u, data, error);
      }
    case LODE_PICKLE_GLOBAL_STORAGE_TYPE:
    default:
      return fail (u, error, LODE_CHECKPOINT_ERROR_UNSUPPORTED, _("The pickle calls %s"), callable->global.qualname);
    }
}

static gboolean
op_setitems (Unpickler *u, guint start, GError **error)
{
  LodePickleObj *dict;

  if ((u->stack->len - start) % 2 != 0)
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("SETITEMS has a key without a value"));
  if (start <= stack_base (u))
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("The pickle sets items with no dict below the mark"));
  dict = g_ptr_array_index (u->stack, start - 1);
  if (dict->kind != LODE_PICKLE_DICT)
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("The pickle sets items on something that is not a dict"));
  for (guint i = start; i < u->stack->len; i++)
    g_ptr_array_add (dict->items, g_ptr_array_index (u->stack, i));
  g_ptr_array_set_size (u->stack, start);
  return TRUE;
}

static gboolean
op_appends (Unpickler *u, guint start, GError **error)
{
  LodePickleObj *list;

  if (start <= stack_base (u))
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("The pickle appends with no list below the mark"));
  list = g_ptr_array_index (u->stack, start - 1);
  if (list->kind != LODE_PICKLE_LIST)
    return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("The pickle appends to something that is not a list"));
  for (guint i = start; i < u->stack->len; i++)
    g_ptr_array_add (list->items, g_ptr_array_index (u->stack, i));
  g_ptr_array_set_size (u->stack, start);
  return TRUE;
}

static gboolean
step (Unpickler *u, gboolean *stop, GError **error)
{
  LodePickleObj *obj, *a, *b, *c;
  guint start;
  guint64 n;

  u->op_pos = u->pos;
  u->op = u->data[u->pos++];
  switch (u->op)
    {
    case 0x80: /* PROTO */
      if (!need (u, 1, error))
        return FALSE;
      n = u->data[u->pos++];
      if (n < 2 || n > 5)
        return fail (u, error, LODE_CHECKPOINT_ERROR_UNSUPPORTED, _("Pickle protocol %u is not supported"), (guint) n);
      return TRUE;
    case 0x95: /* FRAME */
      if (!need (u, 8, error))
        return FALSE;
      n = read_le (u, 8);
      if (n > u->len - u->pos)
        return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("A pickle frame reaches beyond the end"));
      return TRUE;
    case '.': /* STOP */
      obj = pop (u, error);
      if (obj == NULL)
        return FALSE;
      u->pickle->root = obj;
      *stop = TRUE;
      return TRUE;
    case '(': /* MARK */
      if (u->marks->len >= MAX_MARKS)
        return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("The pickle sets too many marks"));
      g_array_append_val (u->marks, u->stack->len);
      return TRUE;
    case '0': /* POP */
      return pop (u, error) != NULL;
    case '1': /* POP_MARK */
      if (!pop_mark (u, &start, error))
        return FALSE;
      g_ptr_array_set_size (u->stack, start);
      return TRUE;
    case '2': /* DUP */
      obj = top (u, error);
      return obj != NULL && push (u, obj, error);
    case 'N':
      return push (u, obj_new (u, LODE_PICKLE_NONE), error);
    case 0x88: /* NEWTRUE */
    case 0x89: /* NEWFALSE */
      obj = obj_new (u, LODE_PICKLE_BOOL);
      obj->b = u->op == 0x88;
      return push (u, obj, error);
    case 'J': /* BININT */
      if (!need (u, 4, error))
        return FALSE;
      return push_int (u, (gint32) (guint32) read_le (u, 4), error);
    case 'K': /* BININT1 */
      if (!need (u, 1, error))
        return FALSE;
      return push_int (u, (gint64) read_le (u, 1), error);
    case 'M': /* BININT2 */
      if (!need (u, 2, error))
        return FALSE;
      return push_int (u, (gint64) read_le (u, 2), error);
    case 0x8a: /* LONG1 */
      if (!need (u, 1, error))
        return FALSE;
      return push_long (u, read_le (u, 1), error);
    case 0x8b: /* LONG4 */
      if (!need (u, 4, error))
        return FALSE;
      return push_long (u, read_le (u, 4), error);
    case 'G': /* BINFLOAT: big-endian double */
      {
        guint64 bits = 0;
        double d;

        if (!need (u, 8, error))
          return FALSE;
        for (int i = 0; i < 8; i++)
          bits = (bits << 8) | u->data[u->pos + i];
        u->pos += 8;
        memcpy (&d, &bits, sizeof d);
        obj = obj_new (u, LODE_PICKLE_FLOAT);
        obj->f = d;
        return push (u, obj, error);
      }
    case 0x8c: /* SHORT_BINUNICODE */
    case 'X':  /* BINUNICODE */
    case 0x8d: /* BINUNICODE8 */
    case 'C':  /* SHORT_BINBYTES */
    case 'B':  /* BINBYTES */
    case 0x8e: /* BINBYTES8 */
    case 'U':  /* SHORT_BINSTRING: Python 2 str, text when it decodes */
    case 'T':  /* BINSTRING */
      return op_sized_string (u, error);
    case '}': /* EMPTY_DICT */
      return push (u, obj_new (u, LODE_PICKLE_DICT), error);
    case ']': /* EMPTY_LIST */
      return push (u, obj_new (u, LODE_PICKLE_LIST), error);
    case ')': /* EMPTY_TUPLE */
      return push (u, obj_new (u, LODE_PICKLE_TUPLE), error);
    case 't': /* TUPLE */
      return pop_mark (u, &start, error) && push_tuple_from (u, start, error);
    case 0x85: /* TUPLE1 */
    case 0x86: /* TUPLE2 */
    case 0x87: /* TUPLE3 */
      n = u->op - 0x84;
      if (u->stack->len < stack_base (u) + n)
        return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("The pickle pops from an empty stack"));
      return push_tuple_from (u, u->stack->len - (guint) n, error);
    case 'l': /* LIST */
    case 'd': /* DICT */
      if (!pop_mark (u, &start, error))
        return FALSE;
      if (u->op == 'd' && (u->stack->len - start) % 2 != 0)
        return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("DICT has a key without a value"));
      obj = obj_new (u, u->op == 'l' ? LODE_PICKLE_LIST : LODE_PICKLE_DICT);
      for (guint i = start; i < u->stack->len; i++)
        g_ptr_array_add (obj->items, g_ptr_array_index (u->stack, i));
      g_ptr_array_set_size (u->stack, start);
      return push (u, obj, error);
    case 'a': /* APPEND */
      obj = pop (u, error);
      a = obj ? top (u, error) : NULL;
      if (a == NULL)
        return FALSE;
      if (a->kind != LODE_PICKLE_LIST)
        return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("The pickle appends to something that is not a list"));
      g_ptr_array_add (a->items, obj);
      return TRUE;
    case 'e': /* APPENDS */
      return pop_mark (u, &start, error) && op_appends (u, start, error);
    case 's': /* SETITEM */
      b = pop (u, error);
      a = b ? pop (u, error) : NULL;
      c = a ? top (u, error) : NULL;
      if (c == NULL)
        return FALSE;
      if (c->kind != LODE_PICKLE_DICT)
        return fail (u, error, LODE_CHECKPOINT_ERROR_CORRUPT, _("The pickle sets items on something that is not a dict"));
      g_ptr_array_add (c->items, a);
      g_ptr_array_add (c->items, b);
      return TRUE;
    case 'u': /* SETITEMS */
      return pop_mark (u, &start, error) && op_setitems (u, start, error);
    case 'b': /* BUILD: the state of a dict or tensor (e.g. _metadata) is dropped */
      obj = pop (u, error);
      return obj != NULL && top (u, error) != NULL;
    case 'q': /* BINPUT */
      if (!need (u, 1, error))
        return FALSE;
      return memo_put (u, read_le (u, 1), error);
    case 'r': /* LONG_BINPUT */
      if (!need (u, 4, error))
        return FALSE;
      return memo_put (u, read_le (u, 4), error);
    case 0x94: /* MEMOIZE */
      return memo_put (u, g_hash_table_size (u->memo), error);
    case 'h': /* BINGET */
      if (!need (u, 1, error))
        return FALSE;
      return memo_get (u, read_le (u, 1), error);
    case 'j': /* LONG_BINGET */
      if (!need (u, 4, error))
        return FALSE;
      return memo_get (u, read_le (u, 4), error);
    case 'c': /* GLOBAL */
      return op_global (u, FALSE, error);
    case 'i': /* INST */
      return op_global (u, TRUE, error);
    case 0x93: /* STACK_GLOBAL */
      return op_stack_global (u, error);
    case 'R': /* REDUCE */
      return op_reduce (u, error);
    case 'Q': /* BINPERSID */
      return op_binpersid (u, error);
    default:
      if (opcode_name (u->op) != NULL)
        return fail (u, error, LODE_CHECKPOINT_ERROR_UNSUPPORTED, _("The pickle uses an opcode Lode does not read"));
      return fail (u, error, LODE_CHECKPOINT_ERROR_UNSUPPORTED, _("The pickle has an unknown opcode"));
    }
}

LodePickle *
lode_pickle_load (const guint8 *data, gsize len, GError **error)
{
  g_autoptr(LodePickle) pickle = g_new0 (LodePickle, 1);
  Unpickler u = { 0 };
  gboolean stop = FALSE;
  gboolean ok = TRUE;

  g_return_val_if_fail (data != NULL || len == 0, NULL);

  pickle->objects = g_ptr_array_new_with_free_func (obj_free);
  u.data = data;
  u.len = len;
  u.pickle = pickle;
  u.stack = g_ptr_array_new ();
  u.marks = g_array_new (FALSE, FALSE, sizeof (guint));
  u.memo = g_hash_table_new (NULL, NULL);

  while (ok && !stop)
    {
      if (u.pos >= u.len)
        {
          g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_CORRUPT,
                       _("The pickle ends after %zu bytes without STOP"), u.len);
          ok = FALSE;
          break;
        }
      ok = step (&u, &stop, error);
    }

  g_ptr_array_unref (u.stack);
  g_array_unref (u.marks);
  g_hash_table_unref (u.memo);
  if (!ok)
    return NULL;
  return g_steal_pointer (&pickle);
}

void
lode_pickle_free (LodePickle *pickle)
{
  if (pickle == NULL)
    return;
  g_ptr_array_unref (pickle->objects);
  g_free (pickle);
}

LodePickleObj *
lode_pickle_root (LodePickle *pickle)
{
  g_return_val_if_fail (pickle != NULL, NULL);
  return pickle->root;
}

guint
lode_pickle_len (LodePickleObj *obj)
{
  g_return_val_if_fail (obj != NULL, 0);
  switch (obj->kind)
    {
    case LODE_PICKLE_TUPLE:
    case LODE_PICKLE_LIST:
      return obj->items->len;
    case LODE_PICKLE_DICT:
      return obj->items->len / 2;
    case LODE_PICKLE_STR:
    case LODE_PICKLE_BYTES:
      return (guint) MIN (obj->str.len, G_MAXUINT);
    default:
      return 0;
    }
}

LodePickleObj *
lode_pickle_item (LodePickleObj *obj, guint i)
{
  g_return_val_if_fail (obj != NULL, NULL);
  g_return_val_if_fail (obj->kind == LODE_PICKLE_TUPLE || obj->kind == LODE_PICKLE_LIST, NULL);
  g_return_val_if_fail (i < obj->items->len, NULL);
  return g_ptr_array_index (obj->items, i);
}

LodePickleObj *
lode_pickle_dict_key (LodePickleObj *dict, guint i)
{
  g_return_val_if_fail (dict != NULL && dict->kind == LODE_PICKLE_DICT, NULL);
  g_return_val_if_fail (i < dict->items->len / 2, NULL);
  return g_ptr_array_index (dict->items, 2 * i);
}

LodePickleObj *
lode_pickle_dict_value (LodePickleObj *dict, guint i)
{
  g_return_val_if_fail (dict != NULL && dict->kind == LODE_PICKLE_DICT, NULL);
  g_return_val_if_fail (i < dict->items->len / 2, NULL);
  return g_ptr_array_index (dict->items, 2 * i + 1);
}

LodePickleObj *
lode_pickle_dict_get (LodePickleObj *dict, const char *key)
{
  g_return_val_if_fail (dict != NULL && key != NULL, NULL);
  if (dict->kind != LODE_PICKLE_DICT)
    return NULL;
  for (guint i = dict->items->len / 2; i > 0; i--)
    {
      LodePickleObj *k = g_ptr_array_index (dict->items, 2 * (i - 1));

      if (k->kind == LODE_PICKLE_STR && g_str_equal (k->str.data, key))
        return g_ptr_array_index (dict->items, 2 * (i - 1) + 1);
    }
  return NULL;
}
