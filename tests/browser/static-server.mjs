// static-server.mjs — the pages' own origin for the browser drivers: serves a
// fixed table of files ({'/path': [file, content type]}) on 127.0.0.1:port
// (0: any free port), 404 for anything else, never cached.
import fs from 'node:fs';
import http from 'node:http';

export function serveFiles(files, port = 0) {
  const server = http.createServer((req, res) => {
    const f = files[new URL(req.url, 'http://x').pathname];
    if (!f) {
      res.writeHead(404, { 'Content-Length': 0 });
      res.end();
      return;
    }
    const body = fs.readFileSync(f[0]);
    res.writeHead(200, { 'Content-Type': f[1], 'Content-Length': body.length, 'Cache-Control': 'no-store' });
    res.end(body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}
