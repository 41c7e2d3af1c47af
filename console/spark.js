// spark.js — a small SVG sparkline (no library): the last values of a
// series as a polyline scaled to its own minimum and maximum.
import { svg } from './dom.js';

const W = 160;
const H = 36;

// values: numbers (oldest first); returns an <svg>.
export function sparkline(values, label) {
  const el = svg('svg', { class: 'spark', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img',
                          'aria-label': label || '' });
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length < 2) {
    el.append(svg('line', { x1: 0, y1: H - 1, x2: W, y2: H - 1, class: 'spark-base' }));
    return el;
  }
  let lo = Math.min(...v);
  let hi = Math.max(...v);
  if (hi === lo) { hi = lo + 1; lo = Math.max(0, lo - 1); }
  const step = W / (v.length - 1);
  const pts = v.map((x, i) => `${(i * step).toFixed(1)},${(H - 2 - ((x - lo) / (hi - lo)) * (H - 4)).toFixed(1)}`);
  el.append(svg('polyline', { points: `0,${H} ${pts.join(' ')} ${W},${H}`, class: 'spark-fill' }));
  el.append(svg('polyline', { points: pts.join(' '), class: 'spark-line' }));
  return el;
}
