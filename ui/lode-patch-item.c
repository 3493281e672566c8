#define G_LOG_DOMAIN "lode-ui"

#include "config.h"

#include <glib/gi18n.h>

#include "lode-patch-item.h"

struct _LodePatchItem
{
  GObject    parent_instance;
  LodePatch *patch;
  LodePatchShares shares;
  gboolean   has_shares;
};

enum {
  PROP_0,
  PROP_TITLE,
  PROP_SUBTITLE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (LodePatchItem, lode_patch_item, G_TYPE_OBJECT)

static void
lode_patch_item_finalize (GObject *object)
{
  LodePatchItem *self = LODE_PATCH_ITEM (object);

  g_clear_pointer (&self->patch, lode_patch_free);
  G_OBJECT_CLASS (lode_patch_item_parent_class)->finalize (object);
}

static void
lode_patch_item_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  LodePatchItem *self = LODE_PATCH_ITEM (object);

  switch (prop_id)
    {
    case PROP_TITLE:
      g_value_take_string (value, lode_patch_item_dup_title (self));
      break;
    case PROP_SUBTITLE:
      g_value_take_string (value, lode_patch_item_dup_subtitle (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
lode_patch_item_class_init (LodePatchItemClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = lode_patch_item_finalize;
  object_class->get_property = lode_patch_item_get_property;

  properties[PROP_TITLE] =
    g_param_spec_string ("title", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_SUBTITLE] =
    g_param_spec_string ("subtitle", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
lode_patch_item_init (LodePatchItem *self)
{
}

LodePatchItem *
lode_patch_item_new (const LodePatch *patch)
{
  LodePatchItem *self = g_object_new (LODE_TYPE_PATCH_ITEM, NULL);

  self->patch = lode_patch_copy (patch);
  return self;
}

const LodePatch *
lode_patch_item_get_patch (LodePatchItem *self)
{
  g_return_val_if_fail (LODE_IS_PATCH_ITEM (self), NULL);
  return self->patch;
}

gint64
lode_patch_item_get_id (LodePatchItem *self)
{
  g_return_val_if_fail (LODE_IS_PATCH_ITEM (self), 0);
  return self->patch->id;
}

char *
lode_patch_item_dup_title (LodePatchItem *self)
{
  if (self->patch->year > 0)
    /* Translators: a patch: its tile id and year */
    return g_strdup_printf (_("Tile %s · %d"), self->patch->tile_id, self->patch->year);
  return g_strdup (self->patch->tile_id);
}

char *
lode_patch_item_dup_subtitle (LodePatchItem *self)
{
  GString *s = g_string_new (lode_review_state_label (self->patch->state));

  if (self->patch->split != NULL)
    g_string_append_printf (s, " · %s", g_str_equal (self->patch->split, "train") ? _("train") : _("test"));
  if (self->patch->odd_reason != NULL)
    g_string_append_printf (s, " · %s", _("odd"));
  if (self->has_shares && self->shares.has_mask)
    {
      /* Translators: share of a patch's pixels labelled mining */
      g_string_append_printf (s, "\n%s %.1f %%", _("mining"), 100.0 * self->shares.mining);
      if (self->shares.cocoa > 0.0)
        /* Translators: share of a patch's pixels labelled cocoa */
        g_string_append_printf (s, " · %s %.1f %%", _("cocoa"), 100.0 * self->shares.cocoa);
    }
  else if (self->has_shares)
    g_string_append_printf (s, "\n%s", _("no mask"));
  return g_string_free (s, FALSE);
}

void
lode_patch_item_set_state (LodePatchItem *self, LodeReviewState state)
{
  g_return_if_fail (LODE_IS_PATCH_ITEM (self));
  if (self->patch->state == state)
    return;
  self->patch->state = state;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SUBTITLE]);
}

const LodePatchShares *
lode_patch_item_get_shares (LodePatchItem *self)
{
  g_return_val_if_fail (LODE_IS_PATCH_ITEM (self), NULL);
  return self->has_shares ? &self->shares : NULL;
}

void
lode_patch_item_set_shares (LodePatchItem *self, const LodePatchShares *shares)
{
  g_return_if_fail (LODE_IS_PATCH_ITEM (self));
  self->shares = *shares;
  self->has_shares = TRUE;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SUBTITLE]);
}
