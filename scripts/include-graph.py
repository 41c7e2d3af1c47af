#!/usr/bin/env python3
"""include-graph.py — the folder-level include graph of src/, its loops, and
(with --layers, or --cmake reading CASCADE_LAYERS from CMakeLists.txt) every
include that does not go down the layer order.

  scripts/include-graph.py [--root DIR] [--layers "base|sip|... app" | --cmake FILE] [--lines]

A folder is the directory of a file under src/ (src/gb/upper/play.c is in
gb/upper). An edge A -> B means some file in A includes "B/...h". Loops are
the strongly connected components with more than one folder. With --layers
(lowest first; folders of one layer joined by "|"), an include from a
folder to a folder of the same or a higher layer is reported (CMake builds
each folder seeing only the folders below its layer). Exit
status: 0 clean, 1 when there is a loop or an upward include."""
import argparse, collections, os, re, sys

INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

def folder_of(rel):
    return os.path.dirname(rel)

def scan(root):
    edges = collections.defaultdict(set)
    why = {}
    lines = collections.Counter()
    folders = set()
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(('.c', '.h')):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, root)
            src = folder_of(rel)
            folders.add(src)
            text = open(path, encoding='utf-8', errors='replace').read()
            lines[src] += text.count('\n')
            for inc in INC.findall(text):
                dst = folder_of(inc)
                if not dst or dst == src:
                    continue
                if not os.path.exists(os.path.join(root, inc)):
                    continue
                edges[src].add(dst)
                why.setdefault((src, dst), rel + ' -> ' + inc)
    return folders, edges, why, lines

def sccs(nodes, edges):
    index, low, on, stack, out, n = {}, {}, set(), [], [], [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1
        stack.append(v); on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            out.append(sorted(comp))
    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--root', default=os.path.join(os.path.dirname(__file__), '..', 'src'))
    ap.add_argument('--layers', default='')
    ap.add_argument('--cmake', default='')
    ap.add_argument('--lines', action='store_true')
    a = ap.parse_args()
    if a.cmake:
        text = open(a.cmake).read()
        m = re.search(r'set\(CASCADE_LAYERS\s+(.*?)\)', text, re.S)
        a.layers = ' '.join(x.replace(' ', '|') for x in re.findall(r'"([^"]+)"', m.group(1)))
    folders, edges, why, lines = scan(a.root)
    bad = 0
    loops = sccs(folders | set(edges), edges)
    for c in loops:
        print('loop: ' + ' <-> '.join(c))
        for s in c:
            for d in sorted(edges[s] & set(c)):
                print('   ', why[(s, d)])
        bad = 1
    if a.layers:
        rank = {}
        for i, group in enumerate(a.layers.split()):
            for f in group.split('|'):
                rank[f] = i
        for f in sorted(folders):
            if f not in rank:
                print('folder not in the layer table: ' + f)
                bad = 1
        for s in sorted(edges):
            for d in sorted(edges[s]):
                if s in rank and d in rank and rank[d] >= rank[s]:
                    print('upward include: %s (%s) -> %s (%s): %s' % (s, rank[s], d, rank[d], why[(s, d)]))
                    bad = 1
    if a.lines:
        for f in sorted(lines):
            print('%-14s %6d' % (f, lines[f]))
        print('%-14s %6d' % ('total', sum(lines.values())))
    if not bad:
        print('include graph: %d folders, %d edges, no loop%s' %
              (len(folders), sum(len(v) for v in edges.values()), ', no upward include' if a.layers else ''))
    return bad

sys.exit(main())
