/* lode-canvas.h: the patch canvas: a composite with the mask over it. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define LODE_TYPE_CANVAS (lode_canvas_get_type ())
G_DECLARE_FINAL_TYPE (LodeCanvas, lode_canvas, LODE, CANVAS, GtkWidget)

GtkWidget *lode_canvas_new          (void);
/* rgba: width * height * 4 bytes, straight (not premultiplied) alpha. */
void       lode_canvas_set_image    (LodeCanvas   *self,
                                     const guint8 *rgba,
                                     int           width,
                                     int           height);
/* overlay: the mask already coloured, same size as the image, or NULL. */
void       lode_canvas_set_overlay  (LodeCanvas   *self,
                                     const guint8 *rgba);
void       lode_canvas_set_mask_opacity (LodeCanvas *self,
                                         double      opacity);
void       lode_canvas_clear        (LodeCanvas   *self);
gboolean   lode_canvas_has_image    (LodeCanvas   *self);

G_END_DECLS
