#!/usr/bin/env python3
"""Function lengths of Rust sources: median and the largest, counted in lines from the `fn`
line to its closing brace (both included). Strings, chars and comments are skipped when
matching braces; a `fn` without a body (a trait method's declaration) is not counted.

usage: python3 sim/tools/fn_lengths.py [--top N] PATH...   (files or directories)
"""
import os
import re
import statistics
import sys

FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:(?:async|const|unsafe|extern\s+\"C\")\s+)*fn\s+(\w+)")


def strip(text):
    """The text with string, char and comment contents blanked (newlines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def lengths(path):
    with open(path, encoding="utf-8") as f:
        lines = strip(f.read()).split("\n")
    found = []
    for start, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        depth, opened = 0, False
        for end in range(start, len(lines)):
            for ch in lines[end]:
                if ch == "{":
                    depth += 1
                    opened = True
                elif ch == "}":
                    depth -= 1
                elif ch == ";" and not opened and depth == 0:
                    break
            else:
                if opened and depth == 0:
                    found.append((end - start + 1, f"{path}:{start + 1} {m.group(1)}"))
                    break
                continue
            break
    return found


def main(args):
    top = 5
    if args[:1] == ["--top"]:
        top, args = int(args[1]), args[2:]
    found = []
    for arg in args:
        if os.path.isdir(arg):
            for root, _, files in sorted(os.walk(arg)):
                for name in sorted(files):
                    if name.endswith(".rs"):
                        found += lengths(os.path.join(root, name))
        else:
            found += lengths(arg)
    sizes = [n for n, _ in found]
    print(f"{len(sizes)} functions, median {statistics.median(sizes)} lines, "
          f"mean {statistics.mean(sizes):.1f}, over 80: {sum(n > 80 for n in sizes)}")
    for n, where in sorted(found, reverse=True)[:top]:
        print(f"{n:5}  {where}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["."])
