#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <inttypes.h>

#include <glib/gi18n.h>
#include <string.h>

#include "lode-sam2-config.h"

G_DEFINE_QUARK (lode-sam2-config-error-quark, lode_sam2_config_error)

/* The published SAM2.1 trunks (sam2.1_hiera_{t,s,b+,l}.yaml and the Hiera
 * defaults for base_plus). */
typedef struct {
  const char *name;
  int embed_dim;
  int num_heads;
  int stages[4];
  int global_blocks[3];
  int window_spec[4];
  int bkg;
} Sam2Size;

static const Sam2Size sam2_sizes[] = {
  { "tiny",      96,  1, { 1, 2, 7, 2 },  { 5, 7, 9 },    { 8, 4, 14, 7 }, 7 },
  { "small",     96,  1, { 1, 2, 11, 2 }, { 7, 10, 13 },  { 8, 4, 14, 7 }, 7 },
  { "base_plus", 112, 2, { 2, 3, 16, 3 }, { 12, 16, 20 }, { 8, 4, 14, 7 }, 14 },
  { "large",     144, 2, { 2, 6, 36, 4 }, { 23, 33, 43 }, { 8, 4, 16, 8 }, 7 },
};

static void
init_from_size (LodeSam2Config *cfg, const Sam2Size *size)
{
  memset (cfg, 0, sizeof *cfg);
  cfg->embed_dim = size->embed_dim;
  cfg->num_heads = size->num_heads;
  memcpy (cfg->stages, size->stages, sizeof cfg->stages);
  cfg->n_global = G_N_ELEMENTS (size->global_blocks);
  memcpy (cfg->global_blocks, size->global_blocks, sizeof size->global_blocks);
  memcpy (cfg->window_spec, size->window_spec, sizeof cfg->window_spec);
  cfg->pos_embed_bkg[0] = cfg->pos_embed_bkg[1] = size->bkg;
  cfg->d_model = 256;
  cfg->decoder_heads = 8;
  cfg->decoder_mlp = 2048;
  cfg->decoder_depth = 2;
  cfg->num_multimask = 3;
  cfg->use_high_res_features = TRUE;
  cfg->pred_obj_scores = TRUE;
  cfg->iou_prediction_use_sigmoid = TRUE;
  cfg->dynamic_multimask_via_stability = TRUE;
  cfg->dynamic_multimask_stability_delta = 0.05;
  cfg->dynamic_multimask_stability_thresh = 0.98;
  cfg->image_size = 1024;
  cfg->size_name = size->name;
  for (int i = 0; i < 4; i++)
    cfg->backbone_channels[i] = cfg->embed_dim << (3 - i);
  cfg->pos_embed_window = cfg->window_spec[0];
  cfg->decoder_dim = cfg->d_model;
}

gboolean
lode_sam2_config_init_size (LodeSam2Config *cfg, const char *size_name)
{
  g_return_val_if_fail (cfg != NULL && size_name != NULL, FALSE);

  for (guint i = 0; i < G_N_ELEMENTS (sam2_sizes); i++)
    if (g_str_equal (sam2_sizes[i].name, size_name))
      {
        init_from_size (cfg, &sam2_sizes[i]);
        return TRUE;
      }
  return FALSE;
}

int
lode_sam2_config_n_blocks (const LodeSam2Config *cfg)
{
  return cfg->stages[0] + cfg->stages[1] + cfg->stages[2] + cfg->stages[3];
}

int
lode_sam2_config_block_stage (const LodeSam2Config *cfg, int block)
{
  int end = 0;

  for (int s = 0; s < 4; s++)
    {
      end += cfg->stages[s];
      if (block < end)
        return s;
    }
  return 3;
}

gboolean
lode_sam2_config_block_is_global (const LodeSam2Config *cfg, int block)
{
  for (int i = 0; i < cfg->n_global; i++)
    if (cfg->global_blocks[i] == block)
      return TRUE;
  return FALSE;
}

static gboolean
invalid (GError **error, const char *what)
{
  g_set_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_INVALID,
               _("Invalid SAM2 configuration: %s"), what);
  return FALSE;
}

gboolean
lode_sam2_config_complete (LodeSam2Config *cfg, GError **error)
{
  int n_blocks, first = 0, grid;

  g_return_val_if_fail (cfg != NULL, FALSE);

  if (cfg->embed_dim <= 0 || cfg->num_heads <= 0)
    return invalid (error, _("the embedding width and the number of heads must be positive"));
  for (int s = 0; s < 4; s++)
    if (cfg->stages[s] <= 0)
      return invalid (error, _("every stage needs at least one block"));
  n_blocks = lode_sam2_config_n_blocks (cfg);
  if (n_blocks > LODE_SAM2_MAX_BLOCKS)
    return invalid (error, _("too many blocks"));
  if (cfg->n_global < 0 || cfg->n_global > (int) G_N_ELEMENTS (cfg->global_blocks))
    return invalid (error, _("too many global-attention blocks"));
  for (int i = 0; i < cfg->n_global; i++)
    if (cfg->global_blocks[i] < 0 || cfg->global_blocks[i] >= n_blocks)
      return invalid (error, _("a global-attention block is out of range"));
  for (int s = 0; s < 4; s++)
    {
      int width = cfg->embed_dim << s, heads = cfg->num_heads << s;

      if (width % heads != 0)
        return invalid (error, _("the heads do not divide a stage's width"));
      if (cfg->window_spec[s] < 0)
        return invalid (error, _("a window size is negative"));
      /* the first block of stages 1-3 pools q inside the previous stage's
       * windows, which must halve evenly */
      first += cfg->stages[s];
      if (s < 3 && !lode_sam2_config_block_is_global (cfg, first)
          && (cfg->window_spec[s] <= 0 || cfg->window_spec[s] % 2 != 0))
        return invalid (error, _("a window where a stage starts must be even"));
    }
  if (cfg->pos_embed_bkg[0] <= 0 || cfg->pos_embed_bkg[1] <= 0 || cfg->window_spec[0] <= 0)
    return invalid (error, _("the positional embeddings must have a size"));
  if (cfg->d_model <= 0 || cfg->d_model % 8 != 0)
    return invalid (error, _("the neck width must be a multiple of 8"));
  if (cfg->image_size < 32 || cfg->image_size % 32 != 0 || cfg->image_size > 4096)
    return invalid (error, _("the input size must be a multiple of 32 between 32 and 4096"));
  grid = cfg->image_size / 4;
  if (grid % cfg->window_spec[0] != 0)
    return invalid (error, _("the window positional embedding does not tile the input"));

  for (int i = 0; i < 4; i++)
    cfg->backbone_channels[i] = cfg->embed_dim << (3 - i);
  cfg->pos_embed_window = cfg->window_spec[0];
  cfg->decoder_dim = cfg->d_model;
  if (cfg->size_name == NULL)
    cfg->size_name = "custom";
  return TRUE;
}

/* ---- the tensors of the image path -------------------------------------- */

static void
spec_clear (gpointer p)
{
  LodeSam2TensorSpec *spec = p;

  g_free (spec->name);
}

static void
spec_add (GArray *specs, char *name, int ndim, gint64 d0, gint64 d1, gint64 d2, gint64 d3)
{
  LodeSam2TensorSpec spec = { name, ndim, { d0, d1, d2, d3 } };

  g_array_append_val (specs, spec);
}

#define ADD1(name, a)          spec_add (specs, (name), 1, (a), 0, 0, 0)
#define ADD2(name, a, b)       spec_add (specs, (name), 2, (a), (b), 0, 0)
#define ADD3(name, a, b, c)    spec_add (specs, (name), 3, (a), (b), (c), 0)
#define ADD4(name, a, b, c, d) spec_add (specs, (name), 4, (a), (b), (c), (d))

GArray *
lode_sam2_config_encoder_tensors (const LodeSam2Config *cfg)
{
  GArray *specs = g_array_new (FALSE, TRUE, sizeof (LodeSam2TensorSpec));
  const char *t = "image_encoder.trunk.";
  gint64 e = cfg->embed_dim, d = cfg->d_model;
  int n_blocks = lode_sam2_config_n_blocks (cfg);

  g_array_set_clear_func (specs, spec_clear);
  ADD4 (g_strconcat (t, "pos_embed", NULL), 1, e, cfg->pos_embed_bkg[0], cfg->pos_embed_bkg[1]);
  ADD4 (g_strconcat (t, "pos_embed_window", NULL), 1, e, cfg->pos_embed_window, cfg->pos_embed_window);
  ADD4 (g_strconcat (t, "patch_embed.proj.weight", NULL), e, 3, 7, 7);
  ADD1 (g_strconcat (t, "patch_embed.proj.bias", NULL), e);
  for (int b = 0; b < n_blocks; b++)
    {
      int s = lode_sam2_config_block_stage (cfg, b);
      gint64 dout = e << s;
      gint64 din = (b > 0 && lode_sam2_config_block_stage (cfg, b - 1) != s) ? dout / 2 : dout;

#define BLOCK(n) g_strdup_printf ("%sblocks.%d.%s", t, b, (n))
      ADD1 (BLOCK ("norm1.weight"), din);
      ADD1 (BLOCK ("norm1.bias"), din);
      ADD2 (BLOCK ("attn.qkv.weight"), 3 * dout, din);
      ADD1 (BLOCK ("attn.qkv.bias"), 3 * dout);
      ADD2 (BLOCK ("attn.proj.weight"), dout, dout);
      ADD1 (BLOCK ("attn.proj.bias"), dout);
      ADD1 (BLOCK ("norm2.weight"), dout);
      ADD1 (BLOCK ("norm2.bias"), dout);
      ADD2 (BLOCK ("mlp.layers.0.weight"), 4 * dout, dout);
      ADD1 (BLOCK ("mlp.layers.0.bias"), 4 * dout);
      ADD2 (BLOCK ("mlp.layers.1.weight"), dout, 4 * dout);
      ADD1 (BLOCK ("mlp.layers.1.bias"), dout);
      if (din != dout)
        {
          ADD2 (BLOCK ("proj.weight"), dout, din);
          ADD1 (BLOCK ("proj.bias"), dout);
        }
#undef BLOCK
    }
  for (int i = 0; i < 4; i++)
    {
      ADD4 (g_strdup_printf ("image_encoder.neck.convs.%d.conv.weight", i), d, cfg->backbone_channels[i], 1, 1);
      ADD1 (g_strdup_printf ("image_encoder.neck.convs.%d.conv.bias", i), d);
    }
  ADD4 (g_strdup ("sam_mask_decoder.conv_s0.weight"), d / 8, d, 1, 1);
  ADD1 (g_strdup ("sam_mask_decoder.conv_s0.bias"), d / 8);
  ADD4 (g_strdup ("sam_mask_decoder.conv_s1.weight"), d / 4, d, 1, 1);
  ADD1 (g_strdup ("sam_mask_decoder.conv_s1.bias"), d / 4);
  ADD3 (g_strdup ("no_mem_embed"), 1, 1, d);
  return specs;
}

static char *
shape_string (int ndim, const gint64 *shape)
{
  GString *s = g_string_new ("[");

  for (int i = 0; i < ndim; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "", shape[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

/* The shape of name: MISSING when absent, SHAPE when it has not ndim
 * dimensions. */
static gboolean
get_shape (LodeCheckpoint *ckpt, const char *name, int ndim, gint64 shape[LODE_TENSOR_MAX_DIMS],
           GError **error)
{
  int got = 0;

  if (!lode_checkpoint_shape (ckpt, name, &got, shape))
    {
      g_set_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_MISSING,
                   _("Not a SAM2.1 checkpoint: the tensor %s is missing"), name);
      return FALSE;
    }
  if (got != ndim)
    {
      g_autofree char *s = shape_string (got, shape);

      g_set_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_SHAPE,
                   _("Not a SAM2.1 checkpoint: the tensor %s has shape %s, expected %d dimensions"),
                   name, s, ndim);
      return FALSE;
    }
  return TRUE;
}

gboolean
lode_sam2_config_check_encoder (const LodeSam2Config *cfg, LodeCheckpoint *ckpt, GError **error)
{
  g_autoptr(GArray) specs = NULL;

  g_return_val_if_fail (cfg != NULL && ckpt != NULL, FALSE);

  specs = lode_sam2_config_encoder_tensors (cfg);
  for (guint i = 0; i < specs->len; i++)
    {
      const LodeSam2TensorSpec *spec = &g_array_index (specs, LodeSam2TensorSpec, i);
      gint64 shape[LODE_TENSOR_MAX_DIMS];

      if (!get_shape (ckpt, spec->name, spec->ndim, shape, error))
        return FALSE;
      if (memcmp (shape, spec->shape, sizeof (gint64) * spec->ndim) != 0)
        {
          g_autofree char *got = shape_string (spec->ndim, shape);
          g_autofree char *want = shape_string (spec->ndim, spec->shape);

          g_set_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_SHAPE,
                       _("The tensor %s has shape %s where the %s SAM2.1 model needs %s"),
                       spec->name, got, cfg->size_name, want);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
has_block_tensor (LodeCheckpoint *ckpt, int block, const char *what)
{
  char name[128];

  g_snprintf (name, sizeof name, "image_encoder.trunk.blocks.%d.%s", block, what);
  return lode_checkpoint_has (ckpt, name);
}

gboolean
lode_sam2_config_from_checkpoint (LodeCheckpoint *ckpt, LodeSam2Config *cfg, GError **error)
{
  gint64 patch[LODE_TENSOR_MAX_DIMS], pos[LODE_TENSOR_MAX_DIMS], neck[LODE_TENSOR_MAX_DIMS];
  int n_blocks = 0, n_starts = 0, starts[4] = { 0 }, stages[4];

  g_return_val_if_fail (ckpt != NULL && cfg != NULL, FALSE);

  if (!get_shape (ckpt, "image_encoder.trunk.patch_embed.proj.weight", 4, patch, error)
      || !get_shape (ckpt, "image_encoder.trunk.pos_embed", 4, pos, error)
      || !get_shape (ckpt, "image_encoder.neck.convs.0.conv.weight", 4, neck, error))
    return FALSE;

  while (n_blocks <= LODE_SAM2_MAX_BLOCKS && has_block_tensor (ckpt, n_blocks, "norm1.weight"))
    n_blocks++;
  for (int b = 1; b < MIN (n_blocks, LODE_SAM2_MAX_BLOCKS); b++)
    if (has_block_tensor (ckpt, b, "proj.weight"))
      {
        if (n_starts < 3)
          starts[1 + n_starts] = b;
        n_starts++;
      }
  if (n_blocks == 0)
    {
      g_set_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_MISSING,
                   _("Not a SAM2.1 checkpoint: the tensor %s is missing"),
                   "image_encoder.trunk.blocks.0.norm1.weight");
      return FALSE;
    }
  if (n_starts != 3 || n_blocks > LODE_SAM2_MAX_BLOCKS)
    {
      g_set_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_UNKNOWN_SIZE,
                   _("The image encoder is not a SAM2.1 Hiera: %d blocks with %d changes of width "
                     "(Lode knows four stages)"), n_blocks, n_starts);
      return FALSE;
    }
  for (int s = 0; s < 4; s++)
    stages[s] = (s < 3 ? starts[s + 1] : n_blocks) - starts[s];

  for (guint i = 0; i < G_N_ELEMENTS (sam2_sizes); i++)
    {
      const Sam2Size *size = &sam2_sizes[i];

      if (patch[0] == size->embed_dim && memcmp (stages, size->stages, sizeof stages) == 0
          && pos[2] == size->bkg && pos[3] == size->bkg)
        {
          init_from_size (cfg, size);
          cfg->d_model = (int) CLAMP (neck[0], 0, G_MAXINT);
          if (!lode_sam2_config_complete (cfg, error))
            return FALSE;
          return lode_sam2_config_check_encoder (cfg, ckpt, error);
        }
    }
  g_set_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_UNKNOWN_SIZE,
               _("The image encoder matches no SAM2.1 size Lode knows (tiny, small, base_plus, large): "
                 "embedding width %" PRId64 ", blocks per stage %d, %d, %d, %d, "
                 "background positional embedding %" PRId64 " x %" PRId64),
               patch[0], stages[0], stages[1], stages[2], stages[3], pos[2], pos[3]);
  return FALSE;
}
