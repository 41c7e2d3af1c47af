#!/usr/bin/env python3
"""promcheck.py — a strict reader of the Prometheus text exposition format
0.0.4, standing in for `promtool check metrics` (the Debian prometheus
package is too big to install for one test).

    promcheck.py check FILE [--no-untyped]
        exit 0 when FILE is well-formed; otherwise one line per problem.
    promcheck.py value FILE 'name{label="v"}'
        prints the sample's value (exit 1 when absent).
    promcheck.py names FILE
        prints every sample name and every family named by a TYPE line
        (a family may have no sample yet), one a line.

Rules checked (the format's, and promtool's lint where it is cheap):
- every line is a comment, '# HELP name text', '# TYPE name type', a blank
  line, or 'name[{labels}] value [timestamp]';
- metric and label names match the format's patterns; label names do not
  start with '__'; label values use only the escapes \\\\, \\" and \\n; no
  label twice in one sample;
- values are floats (NaN, +Inf, -Inf allowed); timestamps integers;
- at most one HELP and one TYPE per family, TYPE before its samples, and
  every family has both (lint); the samples of a family are contiguous;
- no series twice; counters end in _total (lint) and are not negative;
- histograms: only _bucket, _sum and _count samples; per label set the le
  values increase, end with +Inf, the counts never decrease, and _count
  equals the +Inf bucket; _sum present;
- the text ends with a newline.
"""
import math
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class Bad(Exception):
    pass


def parse_float(s):
    if s in ("NaN", "+Inf", "-Inf", "Inf"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", s):
        raise Bad("bad value %r" % s)
    return float(s)


def parse_labels(text, i):
    """text[i] == '{'; returns (dict, index after '}')."""
    labels = {}
    i += 1
    while True:
        if i < len(text) and text[i] == "}":
            return labels, i + 1
        m = LABEL.match(text, i)
        if not m:
            raise Bad("bad label name at column %d" % (i + 1))
        name = m.group(0)
        if name.startswith("__"):
            raise Bad("reserved label name %s" % name)
        if name in labels:
            raise Bad("label %s twice" % name)
        i = m.end()
        if text[i:i + 2] != '="':
            raise Bad("expected =\" after label %s" % name)
        i += 2
        val = []
        while True:
            if i >= len(text):
                raise Bad("unterminated label value")
            c = text[i]
            if c == "\\":
                e = text[i + 1:i + 2]
                if e not in ("\\", '"', "n"):
                    raise Bad("bad escape \\%s in label value" % e)
                val.append("\n" if e == "n" else e)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise Bad("newline in label value")
            else:
                val.append(c)
                i += 1
        labels[name] = "".join(val)
        if i < len(text) and text[i] == ",":
            i += 1
        elif i < len(text) and text[i] == "}":
            return labels, i + 1
        else:
            raise Bad("expected , or } after a label")


def family_of(name, types):
    """The family a sample name belongs to (histogram/summary suffixes)."""
    for suf in ("_bucket", "_sum", "_count"):
        if name.endswith(suf):
            base = name[: -len(suf)]
            if types.get(base) in ("histogram", "summary"):
                return base, suf
    return name, ""


def parse(text):
    """Returns (samples, types, helps, problems); samples: [(name, labels, value, lineno)]."""
    problems = []
    samples, types, helps = [], {}, {}
    seen_series = set()
    closed = set()      # families whose samples ended
    current = None      # family of the last sample
    if text and not text.endswith("\n"):
        problems.append("the text does not end with a newline")
    for n, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"), 1):
        try:
            if line.strip() == "":
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 2 and parts[1] in ("HELP", "TYPE"):
                    if len(parts) < 3 or not NAME.fullmatch(parts[2]):
                        raise Bad("bad %s line" % parts[1])
                    fam = parts[2]
                    if parts[1] == "HELP":
                        if fam in helps:
                            raise Bad("second HELP for %s" % fam)
                        helps[fam] = parts[3] if len(parts) > 3 else ""
                        if re.search(r"\\[^\\n]", helps[fam].replace("\\\\", "")):
                            raise Bad("bad escape in HELP of %s" % fam)
                    else:
                        if fam in types:
                            raise Bad("second TYPE for %s" % fam)
                        if len(parts) < 4 or parts[3] not in TYPES:
                            raise Bad("bad TYPE for %s" % fam)
                        if fam in closed or current == fam:
                            raise Bad("TYPE for %s after its samples" % fam)
                        types[fam] = parts[3]
                continue
            m = NAME.match(line)
            if not m:
                raise Bad("bad metric name")
            name = m.group(0)
            i = m.end()
            labels = {}
            if i < len(line) and line[i] == "{":
                labels, i = parse_labels(line, i)
            rest = line[i:]
            if not rest.startswith(" "):
                raise Bad("expected a space before the value")
            fields = rest.split()
            if len(fields) not in (1, 2):
                raise Bad("expected a value and an optional timestamp")
            value = parse_float(fields[0])
            if len(fields) == 2 and not re.fullmatch(r"-?\d+", fields[1]):
                raise Bad("bad timestamp")
            fam, _ = family_of(name, types)
            if fam != current:
                if fam in closed:
                    raise Bad("samples of %s are not together" % fam)
                if current is not None:
                    closed.add(current)
                current = fam
            key = (name, tuple(sorted(labels.items())))
            if key in seen_series:
                raise Bad("series %s%s twice" % (name, labels))
            seen_series.add(key)
            samples.append((name, labels, value, n))
        except Bad as e:
            problems.append("line %d: %s: %s" % (n, e, line[:120]))
    return samples, types, helps, problems


def check(text, no_untyped):
    samples, types, helps, problems = parse(text)
    fams = {}
    for name, labels, value, n in samples:
        fam, suf = family_of(name, types)
        fams.setdefault(fam, []).append((name, suf, labels, value, n))
    for fam, rows in fams.items():
        t = types.get(fam)
        if t is None:
            problems.append("%s: no TYPE" % fam)
            t = "untyped"
        if fam not in helps:
            problems.append("%s: no HELP" % fam)
        if t == "untyped" and no_untyped:
            problems.append("%s: untyped" % fam)
        if t == "counter":
            if not fam.endswith("_total"):
                problems.append("%s: counter names end in _total" % fam)
            for name, suf, labels, value, n in rows:
                if value < 0 or math.isnan(value):
                    problems.append("line %d: %s: counter below 0 or NaN" % (n, fam))
        if t == "histogram":
            groups = {}
            for name, suf, labels, value, n in rows:
                if suf == "":
                    problems.append("line %d: %s: histogram sample without _bucket/_sum/_count" % (n, name))
                    continue
                rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
                g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
                if suf == "_bucket":
                    if "le" not in labels:
                        problems.append("line %d: bucket without le" % n)
                        continue
                    try:
                        g["buckets"].append((parse_float(labels["le"]), value, n))
                    except Bad:
                        problems.append("line %d: bad le %r" % (n, labels["le"]))
                elif suf == "_sum":
                    g["sum"] = value
                else:
                    g["count"] = value
            for rest, g in groups.items():
                b = g["buckets"]
                where = "%s%s" % (fam, dict(rest))
                if not b or b[-1][0] != math.inf:
                    problems.append("%s: no +Inf bucket last" % where)
                for (le0, c0, _), (le1, c1, n1) in zip(b, b[1:]):
                    if not le1 > le0:
                        problems.append("line %d: %s: le not increasing" % (n1, where))
                    if c1 < c0:
                        problems.append("line %d: %s: bucket counts decrease" % (n1, where))
                if g["sum"] is None:
                    problems.append("%s: no _sum" % where)
                if g["count"] is None:
                    problems.append("%s: no _count" % where)
                elif b and b[-1][1] != g["count"]:
                    problems.append("%s: _count %s != +Inf bucket %s" % (where, g["count"], b[-1][1]))
    return problems


def find_value(text, want):
    m = NAME.match(want)
    name = m.group(0)
    labels = parse_labels(want, m.end())[0] if want[m.end():].startswith("{") else {}
    for sname, slabels, value, _ in parse(text)[0]:
        if sname == name and slabels == labels:
            return value
    return None


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cmd, path = sys.argv[1], sys.argv[2]
    text = open(path, encoding="utf-8").read()
    if cmd == "check":
        problems = check(text, "--no-untyped" in sys.argv[3:])
        for p in problems:
            print(p)
        sys.exit(1 if problems else 0)
    if cmd == "value":
        v = find_value(text, sys.argv[3])
        if v is None:
            sys.exit(1)
        print(int(v) if math.isfinite(v) and v == int(v) else v)
        return
    if cmd == "names":
        samples, types = parse(text)[:2]
        for name in sorted({s[0] for s in samples} | set(types)):
            print(name)
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
