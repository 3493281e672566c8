/* lode-background.h: the worker threads that read rasters and write
 * projects, counted, so that the program does not exit under them.
 *
 * GDAL, PROJ and the CUDA libraries tear themselves down when the process
 * exits; a thumbnail or an import still running in a worker thread at that
 * moment crashes in their freed state. Every background job of Lode runs
 * through lode_background_run_in_thread() (or brackets its work with
 * enter/leave), and the program drains them before it returns from main. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* g_task_run_in_thread(), counted for lode_background_drain(). */
void     lode_background_run_in_thread (GTask           *task,
                                        GTaskThreadFunc  func);
/* For threads not started through GTask (a GThreadPool worker). */
void     lode_background_enter         (void);
void     lode_background_leave         (void);
/* Jobs running now. */
guint    lode_background_running       (void);
/* Waits until no job runs, at most timeout_ms; FALSE if some still do.
 * Jobs are not cancelled here: their owners cancel them when their windows
 * close. */
gboolean lode_background_drain         (guint timeout_ms);

/* How long the program waits for its jobs when it quits. */
#define LODE_BACKGROUND_EXIT_WAIT_MS 30000

G_END_DECLS
