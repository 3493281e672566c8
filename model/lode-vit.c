#define G_LOG_DOMAIN "lode-model"

#include "config.h"


#include "lode-vit.h"

struct _LodeVitWork {
  LodePrithviBackend be;  /* whose buffers these are */
  int    n, tokens;
  float *h, *qkv, *q, *k, *v, *att, *hidden, *hidden2, *tmp;
};

struct _LodeVitActs {
  LodePrithviBackend be;  /* whose buffers these are */
  int    n, tokens;
  float *x_in;        /* [rows, dim] the block's input */
  float *q, *k, *v;   /* [n, heads, tokens, hd] */
  float *probs;       /* [n heads, tokens, tokens] */
  float *att;         /* [rows, dim] heads merged: proj's input */
  float *x_mid;       /* [rows, dim] after the attention's residual */
  float *pre;         /* [rows, mlp_hidden] fc1's output, before the GELU */
};

static const char *const param_names[LODE_VIT_N_PARAMS] = {
  "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
  "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias",
};

const char *
lode_vit_param_name (LodeVitParam param)
{
  g_return_val_if_fail (param < LODE_VIT_N_PARAMS, NULL);
  return param_names[param];
}

int
lode_vit_param_shape (const LodeVitBlock *block, LodeVitParam param, gint64 shape[2])
{
  gint64 e, m;

  g_return_val_if_fail (block != NULL && param < LODE_VIT_N_PARAMS, 0);
  e = block->dim, m = block->mlp_hidden;
  switch (param)
    {
    case LODE_VIT_QKV_WEIGHT:
      shape[0] = 3 * e, shape[1] = e;
      return 2;
    case LODE_VIT_QKV_BIAS:
      shape[0] = 3 * e;
      return 1;
    case LODE_VIT_PROJ_WEIGHT:
      shape[0] = e, shape[1] = e;
      return 2;
    case LODE_VIT_FC1_WEIGHT:
      shape[0] = m, shape[1] = e;
      return 2;
    case LODE_VIT_FC1_BIAS:
      shape[0] = m;
      return 1;
    case LODE_VIT_FC2_WEIGHT:
      shape[0] = e, shape[1] = m;
      return 2;
    default:
      shape[0] = e;
      return 1;
    }
}

gsize
lode_vit_param_numel (const LodeVitBlock *block, LodeVitParam param)
{
  gint64 shape[2];
  int nd = lode_vit_param_shape (block, param, shape);

  return (gsize) shape[0] * (gsize) (nd == 2 ? shape[1] : 1);
}

LodeVitWork *
lode_vit_work_new_on (LodePrithviBackend *be, const LodeVitBlock *block, int n, int tokens, gboolean backward)
{
  LodeVitWork *w;
  gsize rows = (gsize) n * tokens, e = (gsize) block->dim, m = (gsize) block->mlp_hidden;
  LodePrithviBackend run;

  g_return_val_if_fail (be != NULL && block != NULL && n > 0 && tokens > 0, NULL);
  run = lode_prithvi_backend_run (be);
  w = g_new0 (LodeVitWork, 1);
  w->be = run;
  w->n = n, w->tokens = tokens;
  w->h = run.k->alloc (&run, rows * e);
  w->qkv = run.k->alloc (&run, rows * 3 * e);
  w->q = run.k->alloc (&run, rows * e);
  w->k = run.k->alloc (&run, rows * e);
  w->v = run.k->alloc (&run, rows * e);
  w->att = run.k->alloc (&run, rows * e);
  w->hidden = run.k->alloc (&run, rows * m);
  /* the backward's second MLP buffer and scratch */
  if (backward)
    {
      w->hidden2 = run.k->alloc (&run, rows * m);
      w->tmp = run.k->alloc (&run, rows * e);
    }
  if (run.status != 0)
    {
      if (be->status == 0)
        be->status = run.status;
      lode_vit_work_free (w);
      return NULL;
    }
  return w;
}

LodeVitWork *
lode_vit_work_new (const LodeVitBlock *block, int n, int tokens)
{
  LodePrithviBackend cpu;

  lode_prithvi_backend_init_cpu (&cpu);
  return lode_vit_work_new_on (&cpu, block, n, tokens, TRUE);
}

void
lode_vit_work_free (LodeVitWork *work)
{
  if (work == NULL)
    return;
  {
    float *const bufs[] = { work->h, work->qkv, work->q, work->k, work->v, work->att, work->hidden, work->hidden2,
                            work->tmp };

    for (gsize i = 0; i < G_N_ELEMENTS (bufs); i++)
      work->be.k->release (&work->be, bufs[i]);
  }
  g_free (work);
}

LodeVitActs *
lode_vit_acts_new_on (LodePrithviBackend *be, const LodeVitBlock *block, int n, int tokens)
{
  LodeVitActs *a;
  gsize rows = (gsize) n * tokens, e = (gsize) block->dim, m = (gsize) block->mlp_hidden;
  LodePrithviBackend run;

  g_return_val_if_fail (be != NULL && block != NULL && n > 0 && tokens > 0, NULL);
  run = lode_prithvi_backend_run (be);
  a = g_new0 (LodeVitActs, 1);
  a->be = run;
  a->n = n, a->tokens = tokens;
  a->x_in = run.k->alloc (&run, rows * e);
  a->q = run.k->alloc (&run, rows * e);
  a->k = run.k->alloc (&run, rows * e);
  a->v = run.k->alloc (&run, rows * e);
  a->probs = run.k->alloc (&run, (gsize) n * block->heads * tokens * tokens);
  a->att = run.k->alloc (&run, rows * e);
  a->x_mid = run.k->alloc (&run, rows * e);
  a->pre = run.k->alloc (&run, rows * m);
  if (run.status != 0)
    {
      if (be->status == 0)
        be->status = run.status;
      lode_vit_acts_free (a);
      return NULL;
    }
  return a;
}

LodeVitActs *
lode_vit_acts_new (const LodeVitBlock *block, int n, int tokens)
{
  LodePrithviBackend cpu;

  lode_prithvi_backend_init_cpu (&cpu);
  return lode_vit_acts_new_on (&cpu, block, n, tokens);
}

void
lode_vit_acts_free (LodeVitActs *acts)
{
  if (acts == NULL)
    return;
  {
    float *const bufs[] = { acts->x_in, acts->q, acts->k, acts->v, acts->probs, acts->att, acts->x_mid, acts->pre };

    for (gsize i = 0; i < G_N_ELEMENTS (bufs); i++)
      acts->be.k->release (&acts->be, bufs[i]);
  }
  g_free (acts);
}

#define P(i) (block->param[(i)])

void
lode_vit_block_forward_on (LodePrithviBackend *be, const LodeVitBlock *block, float *x, int n, int tokens,
                           LodeVitWork *work, LodeVitActs *save)
{
  const LodePrithviKernels *K;
  int e, heads, hd, rows, m;
  float *q, *k, *v, *merged, *pre;

  g_return_if_fail (be != NULL && block != NULL && x != NULL && work != NULL);
  g_return_if_fail ((gsize) n * tokens <= (gsize) work->n * work->tokens);
  g_return_if_fail (save == NULL || (save->n == n && save->tokens == tokens));
  K = be->k;
  e = block->dim, heads = block->heads, hd = e / heads, rows = n * tokens, m = block->mlp_hidden;
  q = save ? save->q : work->q;
  k = save ? save->k : work->k;
  v = save ? save->v : work->v;
  merged = save ? save->att : work->h;
  pre = save ? save->pre : work->hidden;

  if (save)
    K->copy (be, save->x_in, x, (gsize) rows * e);
  K->layer_norm (be, work->h, x, P (LODE_VIT_NORM1_WEIGHT), P (LODE_VIT_NORM1_BIAS), rows, e, block->eps);
  K->linear (be, work->qkv, work->h, P (LODE_VIT_QKV_WEIGHT), P (LODE_VIT_QKV_BIAS), rows, e, 3 * e);
  K->heads_copy (be, work->qkv, 3 * (gsize) e, 0, q, n, tokens, heads, hd, TRUE);
  K->heads_copy (be, work->qkv, 3 * (gsize) e, e, k, n, tokens, heads, hd, TRUE);
  K->heads_copy (be, work->qkv, 3 * (gsize) e, 2 * e, v, n, tokens, heads, hd, TRUE);
  if (save)
    K->attention_train (be, work->att, save->probs, q, k, v, n * heads, tokens, tokens, hd);
  else
    K->attention (be, work->att, q, k, v, n, heads, tokens, tokens, hd);
  K->heads_copy (be, merged, e, 0, work->att, n, tokens, heads, hd, FALSE);
  K->linear (be, work->qkv, merged, P (LODE_VIT_PROJ_WEIGHT), P (LODE_VIT_PROJ_BIAS), rows, e, e);
  K->add (be, x, x, work->qkv, (gsize) rows * e);

  if (save)
    K->copy (be, save->x_mid, x, (gsize) rows * e);
  K->layer_norm (be, work->h, x, P (LODE_VIT_NORM2_WEIGHT), P (LODE_VIT_NORM2_BIAS), rows, e, block->eps);
  K->linear (be, pre, work->h, P (LODE_VIT_FC1_WEIGHT), P (LODE_VIT_FC1_BIAS), rows, e, m);
  K->gelu (be, work->hidden, pre, (gsize) rows * m);
  K->linear (be, work->h, work->hidden, P (LODE_VIT_FC2_WEIGHT), P (LODE_VIT_FC2_BIAS), rows, m, e);
  K->add (be, x, x, work->h, (gsize) rows * e);
}

void
lode_vit_block_forward (const LodeVitBlock *block, float *x, int n, int tokens, LodeVitWork *work,
                        LodeVitActs *save)
{
  LodePrithviBackend cpu;

  lode_prithvi_backend_init_cpu (&cpu);
  lode_vit_block_forward_on (&cpu, block, x, n, tokens, work, save);
}

void
lode_vit_block_backward_on (LodePrithviBackend *be, const LodeVitBlock *block, float *dx, const LodeVitActs *acts,
                            LodeVitWork *work, float *const grads[LODE_VIT_N_PARAMS])
{
  const LodePrithviKernels *K;
  int e, heads, hd, rows, m, n, tokens;
  gsize count;

  g_return_if_fail (be != NULL && block != NULL && dx != NULL && acts != NULL && work != NULL && grads != NULL);
  g_return_if_fail (work->hidden2 != NULL && work->tmp != NULL);
  n = acts->n, tokens = acts->tokens;
  g_return_if_fail ((gsize) n * tokens <= (gsize) work->n * work->tokens);
  K = be->k;
  e = block->dim, heads = block->heads, hd = e / heads, rows = n * tokens, m = block->mlp_hidden;
  count = (gsize) rows * e;

  /* the MLP half: dx is dL/d(output), also the residual's share */
  K->gelu (be, work->hidden, acts->pre, (gsize) rows * m);
  K->grad_linear (be, work->hidden2, grads[LODE_VIT_FC2_WEIGHT], grads[LODE_VIT_FC2_BIAS], dx, work->hidden,
                  P (LODE_VIT_FC2_WEIGHT), rows, m, e);
  K->grad_gelu (be, work->hidden2, work->hidden2, acts->pre, (gsize) rows * m);
  K->layer_norm (be, work->h, acts->x_mid, P (LODE_VIT_NORM2_WEIGHT), P (LODE_VIT_NORM2_BIAS), rows, e, block->eps);
  K->grad_linear (be, work->tmp, grads[LODE_VIT_FC1_WEIGHT], grads[LODE_VIT_FC1_BIAS], work->hidden2, work->h,
                  P (LODE_VIT_FC1_WEIGHT), rows, e, m);
  K->grad_layer_norm (be, work->h, grads[LODE_VIT_NORM2_WEIGHT], grads[LODE_VIT_NORM2_BIAS], work->tmp,
                      acts->x_mid, P (LODE_VIT_NORM2_WEIGHT), rows, e, block->eps);
  K->add (be, dx, dx, work->h, count);

  /* the attention half: dx is now dL/d(x_mid) */
  K->grad_linear (be, work->tmp, grads[LODE_VIT_PROJ_WEIGHT], grads[LODE_VIT_PROJ_BIAS], dx, acts->att,
                  P (LODE_VIT_PROJ_WEIGHT), rows, e, e);
  K->heads_copy (be, work->tmp, e, 0, work->att, n, tokens, heads, hd, TRUE);
  K->grad_attention (be, work->q, work->k, work->v, work->att, acts->q, acts->k, acts->v, acts->probs, n * heads,
                     tokens, tokens, hd);
  K->heads_copy (be, work->qkv, 3 * (gsize) e, 0, work->q, n, tokens, heads, hd, FALSE);
  K->heads_copy (be, work->qkv, 3 * (gsize) e, e, work->k, n, tokens, heads, hd, FALSE);
  K->heads_copy (be, work->qkv, 3 * (gsize) e, 2 * e, work->v, n, tokens, heads, hd, FALSE);
  K->layer_norm (be, work->h, acts->x_in, P (LODE_VIT_NORM1_WEIGHT), P (LODE_VIT_NORM1_BIAS), rows, e, block->eps);
  K->grad_linear (be, work->tmp, grads[LODE_VIT_QKV_WEIGHT], grads[LODE_VIT_QKV_BIAS], work->qkv, work->h,
                  P (LODE_VIT_QKV_WEIGHT), rows, e, 3 * e);
  K->grad_layer_norm (be, work->h, grads[LODE_VIT_NORM1_WEIGHT], grads[LODE_VIT_NORM1_BIAS], work->tmp,
                      acts->x_in, P (LODE_VIT_NORM1_WEIGHT), rows, e, block->eps);
  K->add (be, dx, dx, work->h, count);
}

void
lode_vit_block_backward (const LodeVitBlock *block, float *dx, const LodeVitActs *acts, LodeVitWork *work,
                         float *const grads[LODE_VIT_N_PARAMS])
{
  LodePrithviBackend cpu;

  lode_prithvi_backend_init_cpu (&cpu);
  lode_vit_block_backward_on (&cpu, block, dx, acts, work, grads);
}
