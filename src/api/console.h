/* console.h — the web console's static files (every file under console/, embedded at build
 * time by cmake/embed_console.cmake) and the routes that serve them:
 *   GET /, GET /index.html     console/index.html
 *   GET /console/{file}        console/<file> (the folder is flat)
 * They are public (no Bearer token: the page signs in with the token
 * itself), answer with an ETag and Cache-Control: no-cache (a matching
 * If-None-Match gets 304), and an unknown file gets 404. */
#ifndef CASCADE_API_CONSOLE_H
#define CASCADE_API_CONSOLE_H

#include <stddef.h>

struct api_server;

struct console_file {
    const char *path;           /* relative to console/, "index.html" */
    const char *content_type;
    const char *etag;           /* quoted, from the content's SHA-1 */
    const unsigned char *data;
    size_t len;
};

/* The generated table (console_nfiles entries, then a NULL one). */
extern const struct console_file console_files[];
extern const size_t console_nfiles;

const struct console_file *api_console_find(const char *path);   /* NULL: no such file */
void api_console_routes(struct api_server *srv);

#endif
