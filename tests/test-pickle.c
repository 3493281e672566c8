/* The safe unpickler: every opcode it reads, the memo, nested structures,
 * refusals with the right error, and robustness against damaged input
 * (the genuine SAM2 data.pkl mutated thousands of ways). */
#include "config.h"

#include <string.h>

#include "lode-checkpoint.h"
#include "lode-pickle.h"
#include "lode-test-util.h"

/* A pickle from a string literal (which may hold NUL bytes). */
#define LOAD(lit, err) lode_pickle_load ((const guint8 *) (lit), sizeof (lit) - 1, (err))

static LodePickleObj *
root_of (LodePickle *pickle)
{
  g_assert_nonnull (pickle);
  return lode_pickle_root (pickle);
}

static void
assert_fails (const guint8 *data, gsize len, int code, const char *needle)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodePickle) pickle = lode_pickle_load (data, len, &error);

  g_assert_null (pickle);
  g_assert_error (error, LODE_CHECKPOINT_ERROR, code);
  if (needle != NULL && strstr (error->message, needle) == NULL)
    g_error ("“%s” is not in “%s”", needle, error->message);
}

#define FAILS(lit, code, needle) assert_fails ((const guint8 *) (lit), sizeof (lit) - 1, (code), (needle))

static void
test_scalars (void)
{
  g_autoptr(GError) error = NULL;
  /* (None, True, False, 7, 65535, -2, -129 (LONG1), 2^40 (LONG4), 0 (LONG1 of 0 bytes), 1.5) */
  g_autoptr(LodePickle) p = LOAD ("\x80\x02("
                                  "N" "\x88" "\x89"
                                  "K\x07" "M\xff\xff" "J\xfe\xff\xff\xff"
                                  "\x8a\x02\x7f\xff"
                                  "\x8b\x06\x00\x00\x00" "\x00\x00\x00\x00\x00\x01"
                                  "\x8a\x00"
                                  "G\x3f\xf8\x00\x00\x00\x00\x00\x00"
                                  "t.", &error);
  LodePickleObj *t;

  g_assert_no_error (error);
  t = root_of (p);
  g_assert_cmpint (t->kind, ==, LODE_PICKLE_TUPLE);
  g_assert_cmpuint (lode_pickle_len (t), ==, 10);
  g_assert_cmpint (lode_pickle_item (t, 0)->kind, ==, LODE_PICKLE_NONE);
  g_assert_true (lode_pickle_item (t, 1)->b);
  g_assert_false (lode_pickle_item (t, 2)->b);
  g_assert_cmpint (lode_pickle_item (t, 3)->i, ==, 7);
  g_assert_cmpint (lode_pickle_item (t, 4)->i, ==, 65535);
  g_assert_cmpint (lode_pickle_item (t, 5)->i, ==, -2);
  g_assert_cmpint (lode_pickle_item (t, 6)->i, ==, -129);
  g_assert_cmpint (lode_pickle_item (t, 7)->i, ==, G_GINT64_CONSTANT (1) << 40);
  g_assert_cmpint (lode_pickle_item (t, 8)->i, ==, 0);
  g_assert_cmpint (lode_pickle_item (t, 9)->kind, ==, LODE_PICKLE_FLOAT);
  g_assert_cmpfloat (lode_pickle_item (t, 9)->f, ==, 1.5);
}

static void
test_strings (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodePickle) p = LOAD ("\x80\x04("
                                  "\x8c\x03" "abc"
                                  "X\x04\x00\x00\x00" "d\xc3\xa9" "f"
                                  "\x8d\x02\x00\x00\x00\x00\x00\x00\x00" "gh"
                                  "C\x03" "\x00\x01\x02"
                                  "B\x01\x00\x00\x00" "\xff"
                                  "U\x02" "py"
                                  "T\x01\x00\x00\x00" "\xfe"
                                  "t.", &error);
  LodePickleObj *t;

  g_assert_no_error (error);
  t = root_of (p);
  g_assert_cmpuint (lode_pickle_len (t), ==, 7);
  g_assert_cmpstr (lode_pickle_item (t, 0)->str.data, ==, "abc");
  g_assert_cmpstr (lode_pickle_item (t, 1)->str.data, ==, "d\xc3\xa9" "f");
  g_assert_cmpstr (lode_pickle_item (t, 2)->str.data, ==, "gh");
  g_assert_cmpint (lode_pickle_item (t, 3)->kind, ==, LODE_PICKLE_BYTES);
  g_assert_cmpmem (lode_pickle_item (t, 3)->str.data, lode_pickle_item (t, 3)->str.len, "\x00\x01\x02", 3);
  g_assert_cmpint (lode_pickle_item (t, 4)->kind, ==, LODE_PICKLE_BYTES);
  /* Python 2 strings: text when they decode, bytes otherwise */
  g_assert_cmpint (lode_pickle_item (t, 5)->kind, ==, LODE_PICKLE_STR);
  g_assert_cmpstr (lode_pickle_item (t, 5)->str.data, ==, "py");
  g_assert_cmpint (lode_pickle_item (t, 6)->kind, ==, LODE_PICKLE_BYTES);

  FAILS ("\x80\x02X\x02\x00\x00\x00\xc3(.", LODE_CHECKPOINT_ERROR_CORRUPT, "UTF-8");
  FAILS ("\x80\x02X\xff\xff\xff\x7f" "abc.", LODE_CHECKPOINT_ERROR_CORRUPT, "BINUNICODE");
  FAILS ("\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xff" "abc.", LODE_CHECKPOINT_ERROR_CORRUPT, "BINUNICODE8");
  FAILS ("\x80\x02T\xff\xff\xff\xff" "abc.", LODE_CHECKPOINT_ERROR_CORRUPT, "BINSTRING");
}

static void
test_containers (void)
{
  g_autoptr(GError) error = NULL;
  /* {'a': [1, 2, 3, (4,), ()], 'b': {'c': (5, 6, 7)}, 'd': [8, 9], 'e': {'f': 10}} */
  g_autoptr(LodePickle) p = LOAD ("\x80\x02}q\x00("
                                  "X\x01\x00\x00\x00" "a"
                                  "]q\x01" "K\x01" "a" "(K\x02K\x03K\x04\x85)e"
                                  "X\x01\x00\x00\x00" "b"
                                  "}X\x01\x00\x00\x00" "c" "K\x05K\x06K\x07\x87s"
                                  "X\x01\x00\x00\x00" "d"
                                  "(K\x08K\x09l"
                                  "X\x01\x00\x00\x00" "e"
                                  "(X\x01\x00\x00\x00" "fK\x0a" "d"
                                  "u.", &error);
  LodePickleObj *root, *a, *b, *c, *d, *e;

  g_assert_no_error (error);
  root = root_of (p);
  g_assert_cmpint (root->kind, ==, LODE_PICKLE_DICT);
  g_assert_cmpuint (lode_pickle_len (root), ==, 4);
  g_assert_cmpstr (lode_pickle_dict_key (root, 2)->str.data, ==, "d");
  a = lode_pickle_dict_get (root, "a");
  g_assert_cmpint (a->kind, ==, LODE_PICKLE_LIST);
  g_assert_cmpuint (lode_pickle_len (a), ==, 5);
  g_assert_cmpint (lode_pickle_item (a, 2)->i, ==, 3);
  g_assert_cmpint (lode_pickle_item (lode_pickle_item (a, 3), 0)->i, ==, 4);
  g_assert_cmpuint (lode_pickle_len (lode_pickle_item (a, 4)), ==, 0);
  b = lode_pickle_dict_get (root, "b");
  c = lode_pickle_dict_get (b, "c");
  g_assert_cmpint (c->kind, ==, LODE_PICKLE_TUPLE);
  g_assert_cmpint (lode_pickle_item (c, 2)->i, ==, 7);
  d = lode_pickle_dict_get (root, "d");
  g_assert_cmpint (d->kind, ==, LODE_PICKLE_LIST);
  g_assert_cmpint (lode_pickle_item (d, 1)->i, ==, 9);
  e = lode_pickle_dict_get (root, "e");
  g_assert_cmpint (lode_pickle_dict_get (e, "f")->i, ==, 10);
  g_assert_null (lode_pickle_dict_get (root, "zz"));
}

static void
test_memo_and_stack (void)
{
  g_autoptr(GError) error = NULL;
  /* protocol 4: FRAME, MEMOIZE; the list is memoized, shared and grown
   * through the memo: x = []; (x, x.append(1) via memo, LONG_BINGET) */
  g_autoptr(LodePickle) p = LOAD ("\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00"
                                  "(]\x94" "h\x00" "K\x01" "a" "0"
                                  "r\x05\x01\x00\x00"
                                  "j\x05\x01\x00\x00"
                                  "K\x09" "2" "0"
                                  "N(N1"
                                  "}K\x01K\x02sb"
                                  "t.", &error);
  LodePickleObj *t, *first, *second;

  g_assert_no_error (error);
  t = root_of (p);
  /* stack: [list (memo 0), list again (LONG_BINGET 261), K9, ... ] */
  g_assert_cmpint (t->kind, ==, LODE_PICKLE_TUPLE);
  g_assert_cmpuint (lode_pickle_len (t), ==, 4);
  first = lode_pickle_item (t, 0);
  second = lode_pickle_item (t, 1);
  g_assert_true (first == second);
  g_assert_cmpuint (lode_pickle_len (first), ==, 1);
  g_assert_cmpint (lode_pickle_item (first, 0)->i, ==, 1);
  g_assert_cmpint (lode_pickle_item (t, 2)->i, ==, 9);
  g_assert_cmpint (lode_pickle_item (t, 3)->kind, ==, LODE_PICKLE_NONE);

  FAILS ("\x80\x02h\x03.", LODE_CHECKPOINT_ERROR_CORRUPT, "memo entry 3");
  FAILS ("\x80\x02j\xff\xff\xff\xff.", LODE_CHECKPOINT_ERROR_CORRUPT, "LONG_BINGET");
  FAILS ("\x80\x02q\x00.", LODE_CHECKPOINT_ERROR_CORRUPT, "empty stack");
  FAILS ("\x80\x02N(0.", LODE_CHECKPOINT_ERROR_CORRUPT, "POP");
  FAILS ("\x80\x02Nt.", LODE_CHECKPOINT_ERROR_CORRUPT, "mark");
  FAILS ("\x80\x02N\x86.", LODE_CHECKPOINT_ERROR_CORRUPT, "TUPLE2");
  FAILS ("\x80\x02" "(K\x01u.", LODE_CHECKPOINT_ERROR_CORRUPT, "SETITEMS");
  FAILS ("\x80\x02K\x01K\x02K\x03s.", LODE_CHECKPOINT_ERROR_CORRUPT, "dict");
  FAILS ("\x80\x02}K\x01" "a.", LODE_CHECKPOINT_ERROR_CORRUPT, "list");
  FAILS ("\x80\x02", LODE_CHECKPOINT_ERROR_CORRUPT, "STOP");
  FAILS ("", LODE_CHECKPOINT_ERROR_CORRUPT, "STOP");
  FAILS ("\x80\x02.", LODE_CHECKPOINT_ERROR_CORRUPT, "STOP");
  FAILS ("\x80\x02J\x01\x00", LODE_CHECKPOINT_ERROR_CORRUPT, "BININT");
  FAILS ("\x80\x02\x95\xff\x00\x00\x00\x00\x00\x00\x00N.", LODE_CHECKPOINT_ERROR_CORRUPT, "FRAME");
}

static void
test_stack_bound (void)
{
  gsize n = 1000002;
  g_autofree guint8 *buf = g_malloc (n + 3);

  buf[0] = 0x80;
  buf[1] = 2;
  memset (buf + 2, 'N', n);
  buf[n + 2] = '.';
  assert_fails (buf, n + 3, LODE_CHECKPOINT_ERROR_CORRUPT, "stack");
  memset (buf + 2, '(', n);
  assert_fails (buf, n + 3, LODE_CHECKPOINT_ERROR_CORRUPT, "marks");
}

static void
test_refusals (void)
{
  FAILS ("\x80\x02\xff.", LODE_CHECKPOINT_ERROR_UNSUPPORTED, "0xff at byte 2");
  FAILS ("\x80\x06N.", LODE_CHECKPOINT_ERROR_UNSUPPORTED, "protocol 6");
  FAILS ("\x80\x02" "ccollections\nOrderedDict\n)\x81.", LODE_CHECKPOINT_ERROR_UNSUPPORTED, "NEWOBJ");
  FAILS ("\x80\x02" "I1\n.", LODE_CHECKPOINT_ERROR_UNSUPPORTED, "INT");
  FAILS ("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.", LODE_CHECKPOINT_ERROR_UNSUPPORTED, "64 bits");
  /* globals outside the allowlist, however they are named */
  FAILS ("\x80\x02" "cos\nsystem\nX\x02\x00\x00\x00lsR.", LODE_CHECKPOINT_ERROR_UNSAFE, "os.system");
  FAILS ("\x80\x02" "(X\x02\x00\x00\x00lsios\nsystem\n.", LODE_CHECKPOINT_ERROR_UNSAFE, "os.system");
  FAILS ("\x80\x04\x8c\x08" "builtins\x8c\x04" "eval\x93.", LODE_CHECKPOINT_ERROR_UNSAFE, "builtins.eval");
  FAILS ("\x80\x02" "ctorch\nload\n.", LODE_CHECKPOINT_ERROR_UNSAFE, "torch.load");
  FAILS ("\x80\x02" "cnumpy.core.multiarray\n_reconstruct\n.", LODE_CHECKPOINT_ERROR_UNSAFE,
         "numpy.core.multiarray._reconstruct");
  /* allowlisted, but never called with anything but what torch writes */
  FAILS ("\x80\x02" "(icollections\nOrderedDict\n.", LODE_CHECKPOINT_ERROR_UNSUPPORTED, "INST");
  FAILS ("\x80\x02" "ccollections\nOrderedDict\n]\x85R.", LODE_CHECKPOINT_ERROR_UNSUPPORTED, "OrderedDict");
  FAILS ("\x80\x02" "ctorch\nFloatStorage\n)R.", LODE_CHECKPOINT_ERROR_UNSUPPORTED, "torch.FloatStorage");
  FAILS ("\x80\x02K\x01)R.", LODE_CHECKPOINT_ERROR_CORRUPT, "REDUCE");
  FAILS ("\x80\x04K\x01\x8c\x01x\x93.", LODE_CHECKPOINT_ERROR_CORRUPT, "STACK_GLOBAL");
  FAILS ("\x80\x02" "cos\nsys", LODE_CHECKPOINT_ERROR_CORRUPT, "GLOBAL");
  FAILS ("\x80\x02" "co\x01s\nsystem\n.", LODE_CHECKPOINT_ERROR_CORRUPT, "unprintable");
  /* persistent ids: only ('storage', type, key, location, numel) */
  FAILS ("\x80\x02X\x01\x00\x00\x00" "0Q.", LODE_CHECKPOINT_ERROR_CORRUPT, "BINPERSID");
  FAILS ("\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x04\x00\x00\x00../x"
         "X\x03\x00\x00\x00" "cpuK\x04tQ.", LODE_CHECKPOINT_ERROR_CORRUPT, "plain name");
  FAILS ("\x80\x02(X\x07\x00\x00\x00storageccollections\nOrderedDict\nX\x01\x00\x00\x00" "0"
         "X\x03\x00\x00\x00" "cpuK\x04tQ.", LODE_CHECKPOINT_ERROR_CORRUPT, "storage type");
  FAILS ("\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0"
         "X\x03\x00\x00\x00" "cpuJ\xff\xff\xff\xfftQ.", LODE_CHECKPOINT_ERROR_SHAPE, "size");
}

/* _rebuild_tensor_v2 over a persistent storage of 12 elements */
#define STORAGE12 "(X\x07\x00\x00\x00storagectorch\nHalfStorage\nX\x01\x00\x00\x00" "5" \
                  "X\x03\x00\x00\x00" "cpuK\x0ctQ"
#define REBUILD "ctorch._utils\n_rebuild_tensor_v2\n"

static void
test_tensors (void)
{
  g_autoptr(GError) error = NULL;
  /* _rebuild_parameter(_rebuild_tensor_v2(storage, 2, (2, 5), (1, 2), False, OrderedDict()), True, OrderedDict()) */
  g_autoptr(LodePickle) p = LOAD ("\x80\x02" "ctorch._utils\n_rebuild_parameter\n" REBUILD "(" STORAGE12
                                  "K\x02K\x02K\x05\x86K\x01K\x02\x86\x89" "ccollections\nOrderedDict\n)Rt"
                                  "R\x88}\x87R.", &error);
  LodePickleObj *t;

  g_assert_no_error (error);
  t = root_of (p);
  g_assert_cmpint (t->kind, ==, LODE_PICKLE_TENSOR);
  g_assert_cmpint (t->tensor.ndim, ==, 2);
  g_assert_cmpint (t->tensor.offset, ==, 2);
  g_assert_cmpint (t->tensor.size[1], ==, 5);
  g_assert_cmpint (t->tensor.stride[1], ==, 2);
  g_assert_cmpint (t->tensor.storage->kind, ==, LODE_PICKLE_STORAGE);
  g_assert_cmpint (t->tensor.storage->storage.dtype, ==, LODE_DTYPE_FLOAT16);
  g_assert_cmpstr (t->tensor.storage->storage.key, ==, "5");
  g_assert_cmpstr (t->tensor.storage->storage.location, ==, "cpu");
  g_assert_cmpint (t->tensor.storage->storage.numel, ==, 12);

  /* last element 2 + 1*1 + 4*2 = 11 fits; one more does not */
  FAILS ("\x80\x02" REBUILD "(" STORAGE12 "K\x03K\x02K\x05\x86K\x01K\x02\x86\x89}tR.",
         LODE_CHECKPOINT_ERROR_SHAPE, "beyond");
  FAILS ("\x80\x02" REBUILD "(" STORAGE12 "K\x0dK\x00\x85K\x01\x85\x89}tR.", LODE_CHECKPOINT_ERROR_SHAPE, "outside");
  FAILS ("\x80\x02" REBUILD "(" STORAGE12 "K\x00J\xff\xff\xff\xff\x85K\x01\x85\x89}tR.",
         LODE_CHECKPOINT_ERROR_SHAPE, "negative");
  FAILS ("\x80\x02" REBUILD "(" STORAGE12 "K\x00(K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01t"
         "(K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01t\x89}tR.", LODE_CHECKPOINT_ERROR_SHAPE, "9 dimensions");
  FAILS ("\x80\x02" REBUILD "(" STORAGE12 "K\x00K\x01\x85K\x01K\x01\x86\x89}tR.", LODE_CHECKPOINT_ERROR_SHAPE, "strides");
  /* 2^31 x 2^31 elements with zero strides: absurd */
  FAILS ("\x80\x02" REBUILD "(" STORAGE12 "K\x00\x8a\x05\x00\x00\x00\x80\x00\x8a\x05\x00\x00\x00\x80\x00\x86"
         "K\x00K\x00\x86\x89}tR.", LODE_CHECKPOINT_ERROR_SHAPE, "absurd");
  /* an enormous stride overflowing 64 bits */
  FAILS ("\x80\x02" REBUILD "(" STORAGE12 "K\x00K\x03\x85\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x3f\x85\x89}tR.",
         LODE_CHECKPOINT_ERROR_SHAPE, "beyond");
  FAILS ("\x80\x02" REBUILD "(K\x00K\x00K\x00\x85K\x01\x85\x89}tR.", LODE_CHECKPOINT_ERROR_CORRUPT, "wrong kind");
  FAILS ("\x80\x02" REBUILD "(K\x00tR.", LODE_CHECKPOINT_ERROR_CORRUPT, "6 or 7");
  FAILS ("\x80\x02" "ctorch._utils\n_rebuild_parameter\n(K\x01\x88}tR.", LODE_CHECKPOINT_ERROR_CORRUPT, "tensor");
}

static GBytes *
genuine (void)
{
  const char *shared = lode_test_shared_dir ();
  g_autofree char *path = NULL;
  g_autofree char *contents = NULL;
  gsize len;

  if (shared == NULL)
    return NULL;
  path = g_build_filename (shared, "reference", "sam2", "sam2.1_hiera_tiny.data.pkl", NULL);
  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  return g_bytes_new_take (g_steal_pointer (&contents), len);
}

static void
test_genuine (void)
{
  g_autoptr(GBytes) bytes = genuine ();
  g_autoptr(GError) error = NULL;
  g_autoptr(LodePickle) p = NULL;
  LodePickleObj *model, *t;
  gsize len;
  const guint8 *data;

  if (bytes == NULL)
    return;
  data = g_bytes_get_data (bytes, &len);
  p = lode_pickle_load (data, len, &error);
  g_assert_no_error (error);
  model = lode_pickle_dict_get (root_of (p), "model");
  g_assert_nonnull (model);
  g_assert_cmpuint (lode_pickle_len (model), ==, 471);
  g_assert_cmpstr (lode_pickle_dict_key (model, 0)->str.data, ==, "maskmem_tpos_enc");
  t = lode_pickle_dict_value (model, 0);
  g_assert_cmpint (t->kind, ==, LODE_PICKLE_TENSOR);
  g_assert_cmpint (t->tensor.ndim, ==, 4);
  g_assert_cmpint (t->tensor.size[0], ==, 7);
  g_assert_cmpint (t->tensor.size[3], ==, 64);
  g_assert_cmpint (t->tensor.stride[0], ==, 64);
  g_assert_cmpint (t->tensor.storage->storage.numel, ==, 448);
  g_assert_cmpint (t->tensor.storage->storage.dtype, ==, LODE_DTYPE_FLOAT32);
  t = lode_pickle_dict_value (model, 470);
  g_assert_cmpstr (t->tensor.storage->storage.key, ==, "470");
  g_assert_cmpint (t->tensor.size[0], ==, 64);
}

/* Mutations of the genuine pickle: each gives a tree or an error, never a
 * crash, a hang or a leak (run under valgrind to see the last). */
static void
test_mutations (void)
{
  g_autoptr(GBytes) bytes = genuine ();
  g_autoptr(GRand) rand = g_rand_new_with_seed (20240611);
  g_autofree guint8 *copy = NULL;
  const guint8 *data;
  gsize len;
  guint ok = 0, failed = 0, unsafe = 0;
  guint n = g_test_thorough () ? 20000 : 2000;

  if (bytes == NULL)
    return;
  data = g_bytes_get_data (bytes, &len);
  copy = g_malloc (len);
  for (guint m = 0; m < n; m++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(LodePickle) p = NULL;
      gsize use = len;
      guint kind = m % 4;

      memcpy (copy, data, len);
      if (kind == 0 || kind == 3)
        for (int k = 0; k < 1 + (int) (m % 7); k++)
          copy[g_rand_int_range (rand, 0, (gint32) len)] = (guint8) g_rand_int_range (rand, 0, 256);
      if (kind == 1 || kind == 3)
        use = (gsize) g_rand_int_range (rand, 0, (gint32) len);
      if (kind == 2)
        {
          /* one bit, near the start where the structure is dense */
          gsize at = (gsize) g_rand_int_range (rand, 0, MIN ((gint32) len, 4096));
          copy[at] ^= (guint8) (1u << g_rand_int_range (rand, 0, 8));
        }
      p = lode_pickle_load (copy, use, &error);
      g_assert_true ((p == NULL) != (error == NULL));
      if (p != NULL)
        {
          g_assert_nonnull (lode_pickle_root (p));
          ok++;
        }
      else
        {
          g_assert_true (error->domain == LODE_CHECKPOINT_ERROR);
          g_assert_true (g_utf8_validate (error->message, -1, NULL));
          failed++;
          unsafe += error->code == LODE_CHECKPOINT_ERROR_UNSAFE;
        }
    }
  g_test_message ("%u mutations: %u loaded, %u refused (%u as unsafe)", n, ok, failed, unsafe);
  g_assert_cmpuint (failed, >, n / 2);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/pickle/scalars", test_scalars);
  g_test_add_func ("/pickle/strings", test_strings);
  g_test_add_func ("/pickle/containers", test_containers);
  g_test_add_func ("/pickle/memo-and-stack", test_memo_and_stack);
  g_test_add_func ("/pickle/stack-bound", test_stack_bound);
  g_test_add_func ("/pickle/refusals", test_refusals);
  g_test_add_func ("/pickle/tensors", test_tensors);
  g_test_add_func ("/pickle/genuine", test_genuine);
  g_test_add_func ("/pickle/mutations", test_mutations);
  return g_test_run ();
}
