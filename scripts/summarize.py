#!/usr/bin/env python3
"""Count test results from meson's testlog.json files.

A googletest binary counts each of its test cases (read from the gtest XML
that meson collects); any other test counts once. A binary that fails with
no failed case recorded (a crash, a timeout) counts one failure of its own.
Prints a per-run table, then the final line: N passed, N failed[, N skipped].
"""
import argparse
import json
import os
import xml.etree.ElementTree as ET


def gtest_cases(xml_path):
    """(passed, failed, skipped) from a gtest XML file, or None."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError):
        return None
    p = f = s = 0
    for tc in root.iter('testcase'):
        if tc.find('failure') is not None or tc.find('error') is not None:
            f += 1
        elif tc.find('skipped') is not None or tc.get('result') == 'skipped' \
                or tc.get('status') == 'notrun':
            s += 1
        else:
            p += 1
    return p, f, s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build-failures', type=int, default=0)
    ap.add_argument('logs', nargs='*')
    a = ap.parse_args()
    P = F = S = 0
    F += a.build_failures
    for log in a.logs:
        if not os.path.exists(log):
            print(f'missing {log}')
            F += 1
            continue
        builddir = os.path.dirname(os.path.dirname(log))
        with open(log) as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                t = json.loads(line)
                res = t.get('result', 'ERROR')
                name = t.get('name', '?')
                counts = None
                short = name.split(' / ')[-1]
                xml = os.path.join(builddir, f"{short}.xml")
                if os.path.exists(xml):
                    counts = gtest_cases(xml)
                    try:
                        os.unlink(xml)  # never read a stale file next time
                    except OSError:
                        pass
                if counts is None:
                    if res in ('OK', 'EXPECTEDFAIL'):
                        counts = (1, 0, 0)
                    elif res == 'SKIP':
                        counts = (0, 0, 1)
                    else:
                        counts = (0, 1, 0)
                p, f, s = counts
                if res not in ('OK', 'SKIP', 'EXPECTEDFAIL') and f == 0:
                    f = 1
                P, F, S = P + p, F + f, S + s
                print(f'{os.path.basename(builddir):8} {res:8} {name}: '
                      f'{p} passed, {f} failed, {s} skipped')
    line = f'{P} passed, {F} failed'
    if S:
        line += f', {S} skipped'
    print(line)
    return 1 if F else 0


if __name__ == '__main__':
    raise SystemExit(main())
