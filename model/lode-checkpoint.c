#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <inttypes.h>

#include <glib/gi18n.h>
#include <json-glib/json-glib.h>
#include <string.h>
#include <zip.h>

#include "lode-checkpoint.h"
#include "lode-pickle.h"
#include "lode-zip.h"

G_DEFINE_QUARK (lode-checkpoint-error-quark, lode_checkpoint_error)

/* A safetensors header larger than this is refused. */
#define SAFETENSORS_MAX_HEADER (100 * 1024 * 1024)
#define MAX_ELEMENTS           (G_GUINT64_CONSTANT (1) << 40)

typedef struct {
  char *name;
  LodeDType dtype;
  int ndim;
  gint64 shape[LODE_TENSOR_MAX_DIMS];
  gint64 stride[LODE_TENSOR_MAX_DIMS];
  gint64 offset;        /* elements from the start of the storage */
  gint64 zip_index;     /* pytorch: the storage entry */
  guint64 entry_size;   /* pytorch: its size in bytes */
  guint64 data_start;   /* safetensors: absolute byte offset in the file */
} Entry;

struct _LodeCheckpoint {
  char *path;
  char *display;
  GMappedFile *map;
  const guint8 *data;
  gsize size;
  gboolean is_zip;
  zip_t *zip;
  GMutex lock;          /* guards zip */
  GPtrArray *entries;   /* Entry, in file order */
  GHashTable *by_name;  /* name -> Entry */
};

static void
entry_free (gpointer data)
{
  Entry *entry = data;

  g_free (entry->name);
  g_free (entry);
}

static void
contiguous_strides (Entry *entry)
{
  gint64 s = 1;

  for (int d = entry->ndim - 1; d >= 0; d--)
    {
      entry->stride[d] = s;
      s *= MAX (entry->shape[d], 1);
    }
}

/* Adds the entry, or replaces an earlier one of the same name. */
static void
add_entry (LodeCheckpoint *self, Entry *entry)
{
  Entry *old = g_hash_table_lookup (self->by_name, entry->name);

  if (old != NULL)
    {
      char *name = old->name;

      *old = *entry;
      old->name = name;
      entry_free (entry);
      return;
    }
  g_ptr_array_add (self->entries, entry);
  g_hash_table_insert (self->by_name, entry->name, entry);
}

/* PyTorch zip files ---------------------------------------------------- */

static gboolean
zip_set_error (LodeCheckpoint *self, zip_error_t *zerr, GError **error)
{
  g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_CORRUPT,
               _("The checkpoint “%s” is a damaged zip archive: %s"),
               self->display, zip_error_strerror (zerr));
  return FALSE;
}

/* Reads len bytes from byte offset of entry index into buf; verifies the
 * checksum when the whole entry is read. */
static gboolean
zip_read_range (LodeCheckpoint *self, gint64 index, guint64 offset, guint64 len,
                guint64 entry_size, void *buf, GError **error)
{
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  zip_file_t *file;
  zip_int64_t got;
  gboolean ok = TRUE;

  file = zip_fopen_index (self->zip, (zip_uint64_t) index, 0);
  if (file == NULL)
    return zip_set_error (self, zip_get_error (self->zip), error);
  if (offset > 0 && zip_fseek (file, (zip_int64_t) offset, SEEK_SET) != 0)
    {
      ok = zip_set_error (self, zip_file_get_error (file), error);
      goto out;
    }
  got = zip_fread (file, buf, len);
  if (got < 0 || (guint64) got != len)
    {
      ok = got < 0 ? zip_set_error (self, zip_file_get_error (file), error)
                   : (g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_CORRUPT,
                                   _("The checkpoint “%s” has a storage shorter than it says"),
                                   self->display), FALSE);
      goto out;
    }
  if (offset == 0 && len == entry_size)
    {
      guint8 extra;

      /* reading past the end makes libzip check the CRC-32 */
      if (zip_fread (file, &extra, 1) != 0)
        ok = zip_set_error (self, zip_file_get_error (file), error);
    }
out:
  zip_fclose (file);
  return ok;
}

/* Checks that every name lies inside one top folder without escaping it;
 * returns that folder ("sam2.1_hiera_tiny"). */
static char *
zip_top_folder (LodeCheckpoint *self, GError **error)
{
  zip_int64_t n = zip_get_num_entries (self->zip, 0);
  g_autofree char *top = NULL;

  for (zip_int64_t i = 0; i < n; i++)
    {
      const char *name = zip_get_name (self->zip, (zip_uint64_t) i, ZIP_FL_ENC_RAW);
      const char *slash;
      g_auto(GStrv) parts = NULL;

      if (name == NULL)
        {
          zip_set_error (self, zip_get_error (self->zip), error);
          return NULL;
        }
      parts = g_strsplit (name, "/", -1);
      for (guint k = 0; parts[k] != NULL; k++)
        if (g_str_equal (parts[k], "..") || g_str_equal (parts[k], "."))
          goto bad;
      if (name[0] == '/' || name[0] == '\\' || strchr (name, '\\') != NULL
          || (g_ascii_isalpha (name[0]) && name[1] == ':'))
        goto bad;
      slash = strchr (name, '/');
      if (slash == NULL || slash == name)
        goto bad;
      if (top == NULL)
        top = g_strndup (name, slash - name);
      else if ((gsize) (slash - name) != strlen (top) || strncmp (name, top, slash - name) != 0)
        goto bad;
      continue;
bad:
      g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_CORRUPT,
                   _("The checkpoint “%s” has an entry “%s” outside its single top folder; it is refused"),
                   self->display, name);
      return NULL;
    }
  if (top == NULL)
    g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_CORRUPT,
                 _("The checkpoint “%s” is an empty zip archive"), self->display);
  return g_steal_pointer (&top);
}

/* Index and size of a stored (uncompressed) entry; -1 with error if it is
 * absent (MISSING) or compressed (UNSUPPORTED). */
static gint64
zip_stored_entry (LodeCheckpoint *self, const char *name, guint64 *size, GError **error)
{
  zip_int64_t index = zip_name_locate (self->zip, name, ZIP_FL_ENC_RAW);
  zip_stat_t st;

  if (index < 0)
    {
      g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_MISSING,
                   _("The checkpoint “%s” has no entry “%s”"), self->display, name);
      return -1;
    }
  zip_stat_init (&st);
  if (zip_stat_index (self->zip, (zip_uint64_t) index, 0, &st) != 0)
    {
      zip_set_error (self, zip_get_error (self->zip), error);
      return -1;
    }
  if (!(st.valid & ZIP_STAT_COMP_METHOD) || st.comp_method != ZIP_CM_STORE
      || ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE))
    {
      g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_UNSUPPORTED,
                   _("The checkpoint “%s” has a compressed or encrypted entry “%s”; "
                     "PyTorch stores entries uncompressed"), self->display, name);
      return -1;
    }
  *size = st.size;
  return index;
}

static char *
zip_read_small (LodeCheckpoint *self, const char *name, guint64 max, gsize *len, GError **error)
{
  guint64 size;
  gint64 index = zip_stored_entry (self, name, &size, error);
  g_autofree char *buf = NULL;

  if (index < 0)
    return NULL;
  if (size > max)
    {
      g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_CORRUPT,
                   _("The entry “%s” of the checkpoint “%s” is implausibly large"), name, self->display);
      return NULL;
    }
  buf = g_malloc (size + 1);
  if (!zip_read_range (self, index, 0, size, size, buf, error))
    return NULL;
  buf[size] = '\0';
  *len = size;
  return g_steal_pointer (&buf);
}

/* The dict of tensors: root['model'], root['state_dict'] or root itself. */
static LodePickleObj *
find_state_dict (LodePickleObj *root)
{
  static const char *const wrappers[] = { "model", "state_dict" };

  if (root->kind != LODE_PICKLE_DICT)
    return NULL;
  for (guint i = 0; i < G_N_ELEMENTS (wrappers); i++)
    {
      LodePickleObj *inner = lode_pickle_dict_get (root, wrappers[i]);

      if (inner != NULL && inner->kind == LODE_PICKLE_DICT)
        return inner;
    }
  return root;
}

static gboolean
open_pytorch (LodeCheckpoint *self, GError **error)
{
  zip_error_t zerr;
  zip_source_t *source;
  g_autofree char *top = NULL;
  g_autofree char *pkl_name = NULL;
  g_autofree char *pkl = NULL;
  g_autofree char *byteorder_name = NULL;
  g_autoptr(LodePickle) pickle = NULL;
  g_autoptr(GHashTable) storages = NULL;   /* key -> entry index + 1 */
  g_autoptr(GError) local = NULL;
  LodePickleObj *dict;
  gsize pkl_len = 0;
  int zerrno = 0;

  zip_error_init (&zerr);
  source = zip_source_buffer_create (self->data, self->size, 0, &zerr);
  if (source != NULL)
    self->zip = zip_open_from_source (source, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
  if (self->zip == NULL)
    {
      zerrno = zip_error_code_zip (&zerr);
      if (source != NULL)
        zip_source_free (source);
      /* Without a central directory, walk the local headers to tell a file
       * cut short from a damaged one. */
      if (!lode_zip_check_truncated (self->data, self->size, self->display, error))
        {
          if (zerrno == ZIP_ER_NOZIP)
            g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_NOT_ZIP,
                         _("The file “%s” starts like a zip archive but is not one"), self->display);
          else
            zip_set_error (self, &zerr, error);
        }
      zip_error_fini (&zerr);
      return FALSE;
    }
  zip_error_fini (&zerr);

  top = zip_top_folder (self, error);
  if (top == NULL)
    return FALSE;

  byteorder_name = g_strconcat (top, "/byteorder", NULL);
  if (zip_name_locate (self->zip, byteorder_name, ZIP_FL_ENC_RAW) >= 0)
    {
      gsize len;
      g_autofree char *order = zip_read_small (self, byteorder_name, 64, &len, error);

      if (order == NULL)
        return FALSE;
      if (!g_str_equal (g_strstrip (order), "little"))
        {
          g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_UNSUPPORTED,
                       _("The checkpoint “%s” stores its tensors in “%s” byte order; Lode reads little-endian checkpoints"),
                       self->display, order);
          return FALSE;
        }
    }

  pkl_name = g_strconcat (top, "/data.pkl", NULL);
  pkl = zip_read_small (self, pkl_name, G_GUINT64_CONSTANT (1) << 30, &pkl_len, error);
  if (pkl == NULL)
    return FALSE;
  pickle = lode_pickle_load ((const guint8 *) pkl, pkl_len, &local);
  if (pickle == NULL)
    {
      g_set_error (error, LODE_CHECKPOINT_ERROR, local->code,
                   _("Cannot read the checkpoint “%s”: %s"), self->display, local->message);
      return FALSE;
    }

  dict = find_state_dict (lode_pickle_root (pickle));
  if (dict == NULL)
    {
      g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_MISSING,
                   _("The checkpoint “%s” holds no dictionary of tensors"), self->display);
      return FALSE;
    }

  storages = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < lode_pickle_len (dict); i++)
    {
      LodePickleObj *key = lode_pickle_dict_key (dict, i);
      LodePickleObj *value = lode_pickle_dict_value (dict, i);
      LodePickleObj *storage;
      Entry *entry;
      gpointer found;
      gint64 index;
      guint64 size = 0, need;

      if (key->kind != LODE_PICKLE_STR || value->kind != LODE_PICKLE_TENSOR)
        continue;
      storage = value->tensor.storage;
      if (g_hash_table_lookup_extended (storages, storage->storage.key, NULL, &found))
        {
          zip_stat_t st;

          index = GPOINTER_TO_SIZE (found) - 1;
          zip_stat_init (&st);
          if (zip_stat_index (self->zip, (zip_uint64_t) index, 0, &st) != 0)
            return zip_set_error (self, zip_get_error (self->zip), error);
          size = st.size;
          need = (guint64) storage->storage.numel * lode_dtype_size (storage->storage.dtype);
          if (size < need)
            {
              g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_SHAPE,
                           _("The checkpoint “%s” uses the storage “%s” with two different sizes"),
                           self->display, storage->storage.key);
              return FALSE;
            }
        }
      else
        {
          g_autofree char *entry_name = g_strconcat (top, "/data/", storage->storage.key, NULL);

          index = zip_stored_entry (self, entry_name, &size, error);
          if (index < 0)
            return FALSE;
          need = (guint64) storage->storage.numel * lode_dtype_size (storage->storage.dtype);
          if (size < need)
            {
              g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_SHAPE,
                           _("The checkpoint “%s” has a storage “%s” of %" PRIu64
                             " bytes where %" PRIu64 " are needed"),
                           self->display, entry_name, size, need);
              return FALSE;
            }
          g_hash_table_insert (storages, g_strdup (storage->storage.key), GSIZE_TO_POINTER ((gsize) index + 1));
        }

      entry = g_new0 (Entry, 1);
      entry->name = g_strdup (key->str.data);
      entry->dtype = storage->storage.dtype;
      entry->ndim = value->tensor.ndim;
      memcpy (entry->shape, value->tensor.size, sizeof entry->shape);
      memcpy (entry->stride, value->tensor.stride, sizeof entry->stride);
      entry->offset = value->tensor.offset;
      entry->zip_index = index;
      entry->entry_size = size;
      add_entry (self, entry);
    }
  if (self->entries->len == 0)
    {
      g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_MISSING,
                   _("The checkpoint “%s” holds no tensors"), self->display);
      return FALSE;
    }
  return TRUE;
}

/* safetensors ------------------------------------------------------------ */

static const struct {
  const char *name;
  LodeDType dtype;
} safetensors_dtypes[] = {
  { "F32", LODE_DTYPE_FLOAT32 }, { "F16", LODE_DTYPE_FLOAT16 }, { "BF16", LODE_DTYPE_BFLOAT16 },
  { "F64", LODE_DTYPE_FLOAT64 }, { "I64", LODE_DTYPE_INT64 }, { "I32", LODE_DTYPE_INT32 },
  { "I16", LODE_DTYPE_INT16 }, { "I8", LODE_DTYPE_INT8 }, { "U8", LODE_DTYPE_UINT8 },
  { "BOOL", LODE_DTYPE_BOOL },
};

static gboolean
json_get_uint (JsonNode *node, guint64 *value)
{
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64
      || json_node_get_int (node) < 0)
    return FALSE;
  *value = (guint64) json_node_get_int (node);
  return TRUE;
}

static int
compare_data_start (gconstpointer a, gconstpointer b)
{
  const Entry *ea = *(Entry * const *) a;
  const Entry *eb = *(Entry * const *) b;

  return ea->data_start < eb->data_start ? -1 : ea->data_start > eb->data_start;
}

static gboolean
safetensors_bad (LodeCheckpoint *self, const char *tensor, const char *what, GError **error)
{
  if (tensor != NULL)
    g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_CORRUPT,
                 _("The safetensors file “%s” has a bad header for “%s”: %s"), self->display, tensor, what);
  else
    g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_CORRUPT,
                 _("The safetensors file “%s” has a bad header: %s"), self->display, what);
  return FALSE;
}

static gboolean
open_safetensors (LodeCheckpoint *self, guint64 header_len, GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) local = NULL;
  g_autoptr(GList) members = NULL;
  g_autoptr(GPtrArray) sorted = g_ptr_array_new ();
  guint64 data_size = self->size - 8 - header_len;
  guint64 prev_end = 0;
  JsonObject *root;

  if (!json_parser_load_from_data (parser, (const char *) self->data + 8, (gssize) header_len, &local))
    return safetensors_bad (self, NULL, local->message, error);
  if (!JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return safetensors_bad (self, NULL, _("it is not a JSON object"), error);
  root = json_node_get_object (json_parser_get_root (parser));
  members = json_object_get_members (root);
  for (GList *l = members; l != NULL; l = l->next)
    {
      const char *name = l->data;
      JsonNode *node = json_object_get_member (root, name);
      JsonObject *info;
      JsonArray *shape, *offsets;
      const char *dtype_name;
      guint64 begin, end, numel;
      Entry *entry;
      gboolean known = FALSE;

      if (g_str_equal (name, "__metadata__"))
        continue;
      if (!JSON_NODE_HOLDS_OBJECT (node))
        return safetensors_bad (self, name, _("not an object"), error);
      info = json_node_get_object (node);
      node = json_object_get_member (info, "dtype");
      dtype_name = node && JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING
                   ? json_node_get_string (node) : NULL;
      node = json_object_get_member (info, "shape");
      shape = node && JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;
      node = json_object_get_member (info, "data_offsets");
      offsets = node && JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;
      if (dtype_name == NULL || shape == NULL || offsets == NULL)
        return safetensors_bad (self, name, _("dtype, shape or data_offsets is missing"), error);

      entry = g_new0 (Entry, 1);
      entry->name = g_strdup (name);
      add_entry (self, entry);
      g_ptr_array_add (sorted, entry);
      for (guint k = 0; k < G_N_ELEMENTS (safetensors_dtypes); k++)
        if (g_str_equal (dtype_name, safetensors_dtypes[k].name))
          {
            entry->dtype = safetensors_dtypes[k].dtype;
            known = TRUE;
          }
      if (!known)
        {
          g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_UNSUPPORTED,
                       _("The safetensors file “%s” stores “%s” as %s, a type Lode does not read"),
                       self->display, name, dtype_name);
          return FALSE;
        }
      if (json_array_get_length (shape) > LODE_TENSOR_MAX_DIMS)
        return safetensors_bad (self, name, _("too many dimensions"), error);
      entry->ndim = (int) json_array_get_length (shape);
      for (int d = 0; d < entry->ndim; d++)
        {
          guint64 s;

          if (!json_get_uint (json_array_get_element (shape, d), &s) || s > MAX_ELEMENTS)
            return safetensors_bad (self, name, _("a size is not a plausible count"), error);
          entry->shape[d] = (gint64) s;
        }
      if (!lode_shape_numel (entry->ndim, entry->shape, MAX_ELEMENTS, &numel))
        {
          g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_SHAPE,
                       _("The safetensors file “%s” gives “%s” an absurd shape"), self->display, name);
          return FALSE;
        }
      /* Only once the shape is known to be bounded: the strides' products
       * cannot overflow then. */
      contiguous_strides (entry);
      if (json_array_get_length (offsets) != 2
          || !json_get_uint (json_array_get_element (offsets, 0), &begin)
          || !json_get_uint (json_array_get_element (offsets, 1), &end)
          || begin > end)
        return safetensors_bad (self, name, _("data_offsets is not a pair of offsets"), error);
      if (end - begin != numel * lode_dtype_size (entry->dtype))
        {
          g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_SHAPE,
                       _("The safetensors file “%s” gives “%s” %" PRIu64
                         " bytes for %" PRIu64 " elements of %s"),
                       self->display, name, end - begin, numel, lode_dtype_name (entry->dtype));
          return FALSE;
        }
      if (end > data_size)
        {
          g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_TRUNCATED,
                       _("The safetensors file “%s” is cut short (perhaps an interrupted download): "
                         "it has %zu bytes but “%s” ends at byte %" PRIu64),
                       self->display, self->size, name, 8 + header_len + end);
          return FALSE;
        }
      entry->data_start = 8 + header_len + begin;
    }

  g_ptr_array_sort (sorted, compare_data_start);
  for (guint i = 0; i < sorted->len; i++)
    {
      Entry *entry = g_ptr_array_index (sorted, i);
      guint64 begin = entry->data_start - 8 - header_len;
      guint64 numel = 0;

      lode_shape_numel (entry->ndim, entry->shape, MAX_ELEMENTS, &numel);
      if (numel == 0)
        continue;
      if (begin < prev_end)
        return safetensors_bad (self, entry->name, _("its data overlaps another tensor"), error);
      prev_end = begin + numel * lode_dtype_size (entry->dtype);
    }
  /* file order is data order */
  g_ptr_array_sort (self->entries, compare_data_start);
  if (self->entries->len == 0)
    {
      g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_MISSING,
                   _("The safetensors file “%s” holds no tensors"), self->display);
      return FALSE;
    }
  return TRUE;
}

/* Public ----------------------------------------------------------------- */

LodeCheckpoint *
lode_checkpoint_open (const char *path, GError **error)
{
  g_autoptr(LodeCheckpoint) self = NULL;
  g_autoptr(GError) local = NULL;
  guint64 header_len = 0;

  g_return_val_if_fail (path != NULL, NULL);

  self = g_new0 (LodeCheckpoint, 1);
  g_mutex_init (&self->lock);
  self->path = g_strdup (path);
  self->display = g_filename_display_name (path);
  self->entries = g_ptr_array_new_with_free_func (entry_free);
  self->by_name = g_hash_table_new (g_str_hash, g_str_equal);

  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_OPEN,
                   _("Cannot open the checkpoint “%s”: it is a folder"), self->display);
      return NULL;
    }
  self->map = g_mapped_file_new (path, FALSE, &local);
  if (self->map == NULL)
    {
      g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_OPEN,
                   _("Cannot open the checkpoint “%s”: %s"), self->display, local->message);
      return NULL;
    }
  self->data = (const guint8 *) g_mapped_file_get_contents (self->map);
  self->size = g_mapped_file_get_length (self->map);

  if (self->size >= 4 && memcmp (self->data, "PK\003\004", 4) == 0)
    {
      self->is_zip = TRUE;
      if (!open_pytorch (self, error))
        return NULL;
      return g_steal_pointer (&self);
    }
  if (self->size >= 9)
    for (int i = 0; i < 8; i++)
      header_len |= (guint64) self->data[i] << (8 * i);
  if (self->size >= 10 && self->data[8] == '{')
    {
      if (header_len > SAFETENSORS_MAX_HEADER)
        {
          g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_CORRUPT,
                       _("The safetensors file “%s” claims a header of %" PRIu64
                         " bytes, more than the %d Lode accepts"),
                       self->display, header_len, SAFETENSORS_MAX_HEADER);
          return NULL;
        }
      if (header_len > self->size - 8)
        {
          g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_TRUNCATED,
                       _("The safetensors file “%s” is cut short (perhaps an interrupted download): "
                         "it has %zu bytes, less than its %" PRIu64 "-byte header"),
                       self->display, self->size, header_len);
          return NULL;
        }
      if (!open_safetensors (self, header_len, error))
        return NULL;
      return g_steal_pointer (&self);
    }
  if (self->size == 0)
    g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_TRUNCATED,
                 _("The checkpoint “%s” is empty (0 bytes): the file is cut short, perhaps an interrupted download"),
                 self->display);
  else
    g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_NOT_ZIP,
                 _("The file “%s” is neither a PyTorch checkpoint (zip) nor a safetensors file"),
                 self->display);
  return NULL;
}

void
lode_checkpoint_free (LodeCheckpoint *self)
{
  if (self == NULL)
    return;
  if (self->zip != NULL)
    zip_discard (self->zip);
  g_clear_pointer (&self->map, g_mapped_file_unref);
  g_hash_table_unref (self->by_name);
  g_ptr_array_unref (self->entries);
  g_mutex_clear (&self->lock);
  g_free (self->display);
  g_free (self->path);
  g_free (self);
}

const char *
lode_checkpoint_format (LodeCheckpoint *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->is_zip ? "pytorch" : "safetensors";
}

guint
lode_checkpoint_n_tensors (LodeCheckpoint *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->entries->len;
}

const char *
lode_checkpoint_name (LodeCheckpoint *self, guint i)
{
  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (i < self->entries->len, NULL);
  return ((Entry *) g_ptr_array_index (self->entries, i))->name;
}

gboolean
lode_checkpoint_has (LodeCheckpoint *self, const char *name)
{
  g_return_val_if_fail (self != NULL && name != NULL, FALSE);
  return g_hash_table_contains (self->by_name, name);
}

gboolean
lode_checkpoint_shape (LodeCheckpoint *self, const char *name, int *ndim,
                       gint64 shape[LODE_TENSOR_MAX_DIMS])
{
  Entry *entry;

  g_return_val_if_fail (self != NULL && name != NULL, FALSE);
  entry = g_hash_table_lookup (self->by_name, name);
  if (entry == NULL)
    return FALSE;
  if (ndim != NULL)
    *ndim = entry->ndim;
  if (shape != NULL)
    memcpy (shape, entry->shape, sizeof entry->shape);
  return TRUE;
}

const char *
lode_checkpoint_dtype (LodeCheckpoint *self, const char *name)
{
  Entry *entry;

  g_return_val_if_fail (self != NULL && name != NULL, NULL);
  entry = g_hash_table_lookup (self->by_name, name);
  return entry != NULL ? lode_dtype_name (entry->dtype) : NULL;
}

GPtrArray *
lode_checkpoint_names_with_prefix (LodeCheckpoint *self, const char *prefix)
{
  GPtrArray *names = g_ptr_array_new ();

  g_return_val_if_fail (self != NULL && prefix != NULL, names);
  for (guint i = 0; i < self->entries->len; i++)
    {
      Entry *entry = g_ptr_array_index (self->entries, i);

      if (g_str_has_prefix (entry->name, prefix))
        g_ptr_array_add (names, entry->name);
    }
  return names;
}

/* Copies the elements of entry from src (the bytes of its storage from
 * element entry->offset on) into dst as float32, in row-major order. */
static void
gather (const Entry *entry, const guint8 *src, gsize numel, float *dst)
{
  gsize es = lode_dtype_size (entry->dtype);
  gint64 index[LODE_TENSOR_MAX_DIMS] = { 0 };
  gint64 expect = 1;
  gboolean contiguous = TRUE;
  int last = entry->ndim - 1;
  gsize row, done = 0;

  for (int d = last; d >= 0; d--)
    {
      if (entry->shape[d] != 1 && entry->stride[d] != expect)
        contiguous = FALSE;
      expect *= entry->shape[d];
    }
  if (contiguous || entry->ndim == 0)
    {
      lode_dtype_convert (entry->dtype, src, numel, dst);
      return;
    }

  row = (gsize) entry->shape[last];
  while (done < numel)
    {
      gint64 base = 0;

      for (int d = 0; d < last; d++)
        base += index[d] * entry->stride[d];
      if (entry->stride[last] == 1)
        lode_dtype_convert (entry->dtype, src + base * es, row, dst + done);
      else
        for (gsize k = 0; k < row; k++)
          lode_dtype_convert (entry->dtype, src + (base + (gint64) k * entry->stride[last]) * es, 1,
                              dst + done + k);
      done += row;
      for (int d = last - 1; d >= 0; d--)
        {
          if (++index[d] < entry->shape[d])
            break;
          index[d] = 0;
        }
    }
}

LodeTensor *
lode_checkpoint_load (LodeCheckpoint *self, const char *name, GError **error)
{
  g_autoptr(LodeTensor) tensor = NULL;
  g_autofree guint8 *buf = NULL;
  const guint8 *src;
  Entry *entry;
  gsize es;
  guint64 span = 0;

  g_return_val_if_fail (self != NULL && name != NULL, NULL);

  entry = g_hash_table_lookup (self->by_name, name);
  if (entry == NULL)
    {
      g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_MISSING,
                   _("The checkpoint “%s” has no tensor “%s”"), self->display, name);
      return NULL;
    }
  tensor = lode_tensor_new (entry->ndim, entry->shape);
  if (tensor == NULL)
    {
      g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_SHAPE,
                   _("The tensor “%s” of “%s” is too large to load"), name, self->display);
      return NULL;
    }
  tensor->name = g_strdup (name);
  if (tensor->numel == 0)
    return g_steal_pointer (&tensor);

  /* elements from the first to the last one the tensor reaches; the
   * opening checks made sure they lie inside the storage */
  span = 1;
  for (int d = 0; d < entry->ndim; d++)
    span += (guint64) (entry->shape[d] - 1) * (guint64) entry->stride[d];
  es = lode_dtype_size (entry->dtype);

  if (self->is_zip)
    {
      buf = g_try_malloc (span * es);
      if (buf == NULL)
        {
          g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_SHAPE,
                       _("The tensor “%s” of “%s” is too large to load"), name, self->display);
          return NULL;
        }
      if (!zip_read_range (self, entry->zip_index, (guint64) entry->offset * es, span * es,
                           entry->entry_size, buf, error))
        {
          g_prefix_error (error, _("Cannot load “%s”: "), name);
          return NULL;
        }
      src = buf;
    }
  else
    src = self->data + entry->data_start;

  gather (entry, src, tensor->numel, tensor->data);
  return g_steal_pointer (&tensor);
}
