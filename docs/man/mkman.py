#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Turns a manual page source (docs/man/*.md) into roff for man(1), or into the C string the
CLI prints for --help: one source for both, so the two never disagree. Run by the build.

  mkman.py roff SRC.md OUT [--version V] [--root DIR]   the man page
  mkman.py help SRC.md OUT.h                            static const char *const help_lines[]

The source is a small markdown subset, nothing more:
  # name(section) -- one-line description     first line: the NAME section
  ## TITLE                                     a section (.SH)
  ### title                                    a subsection (.SS)
  text lines; a blank line ends a paragraph    (inline: `code` bold, *word* italic)
      four-space-indented lines                verbatim (a synopsis, an example)
  term                                         a definition: a line followed by lines that
  :   description                              start with ':   ', continued by 4-space lines
  - item                                       a bulleted list item
  @header include/globalalloc.h                (roff only) the header's declarations, with
                                               their comments, under its ---- banners
"""
import re
import sys

# ---- the source --------------------------------------------------------------------------


def blocks(lines):
    """Yields (kind, data): ('title', (name, section, desc)), ('sh', t), ('ss', t),
    ('para', [lines]), ('code', [lines]), ('def', (term, [lines])), ('item', [lines]),
    ('header', path)."""
    i, n = 0, len(lines)
    while i < n:
        line = lines[i].rstrip("\n")
        if not line.strip():
            i += 1
            continue
        m = re.match(r"^# (\S+)\((\w+)\) -- (.*)$", line)
        if m:
            yield "title", m.groups()
            i += 1
        elif line.startswith("## "):
            yield "sh", line[3:].strip()
            i += 1
        elif line.startswith("### "):
            yield "ss", line[4:].strip()
            i += 1
        elif line.startswith("@header "):
            yield "header", line.split(None, 1)[1].strip()
            i += 1
        elif line.startswith("    "):
            code = []
            while i < n and (lines[i].startswith("    ") or not lines[i].strip()):
                code.append(lines[i].rstrip("\n")[4:])
                i += 1
            while code and not code[-1].strip():
                code.pop()
            yield "code", code
        elif line.startswith("- "):
            item = [line[2:]]
            i += 1
            while i < n and lines[i].startswith("  ") and lines[i].strip():
                item.append(lines[i].strip())
                i += 1
            yield "item", item
        elif i + 1 < n and lines[i + 1].startswith(":   "):
            desc = [lines[i + 1][4:].rstrip("\n")]
            i += 2
            while i < n and lines[i].startswith("    ") and lines[i].strip():
                desc.append(lines[i][4:].rstrip("\n"))
                i += 1
            yield "def", (line, desc)
        else:
            para = []
            while i < n and lines[i].strip() and not re.match(r"^(#|    |- |@header )", lines[i]):
                if i + 1 < n and lines[i + 1].startswith(":   ") and para:
                    break
                para.append(lines[i].rstrip("\n"))
                i += 1
            yield "para", para


# ---- roff --------------------------------------------------------------------------------


def roff_escape(s):
    s = s.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"^([.'])", r"\\&\1", s)


def roff_inline(s):
    """`code` in bold, *word* in italic, everything escaped."""
    out = []
    for k, part in enumerate(re.split(r"`([^`]*)`", s)):
        if k % 2:
            out.append("\\fB" + roff_escape(part) + "\\fR")
        else:
            part = roff_escape(part)
            out.append(re.sub(r"\*([^*\s][^*]*)\*", r"\\fI\1\\fR", part))
    line = "".join(out)
    return "\\&" + line if line.startswith((".", "'")) else line


def roff_code(lines):
    return [".RS 4", ".nf"] + [roff_escape(x) if x else "" for x in lines] + [".fi", ".RE"]


def header_items(path):
    """The declarations of a C header in order: ('ss', title), ('code', lines) and
    ('text', paragraph) items. A comment just before a declaration describes it and comes
    after it; consecutive declarations share one block."""
    src = open(path).read().split("\n")
    items, comment, i = [], None, 0
    while i < len(src) and not src[i].startswith("/* ----"):
        i += 1

    def add_code(code):
        nonlocal comment
        if items and items[-1][0] == "code" and comment is None:
            items[-1][1].extend(code)
        else:
            items.append(("code", code))
        if comment:
            items.append(("text", comment))
        comment = None

    def flush_comment():
        nonlocal comment
        if comment:
            items.append(("text", comment))
        comment = None

    while i < len(src):
        line = src[i]
        s = line.strip()
        m = re.match(r"^/\* ---- (.*?) -+ \*/$", s)
        if m:
            flush_comment()
            items.append(("ss", m.group(1)))
            i += 1
        elif s.startswith("/*"):
            flush_comment()
            text = []
            while True:
                t = re.sub(r"^\s*(/\*+|\*(?!/))?\s?", "", src[i]).replace("*/", "").rstrip()
                text.append(t)
                if "*/" in src[i]:
                    break
                i += 1
            i += 1
            comment = " ".join(t.strip() for t in text if t.strip())
        elif s.startswith("#define GA_ERRNO_MAP"):
            codes = []
            while src[i].rstrip().endswith("\\"):
                i += 1
                m = re.search(r'X\((\w+), (-?\d+), "([^"]*)"\)', src[i])
                if m:
                    codes.append("GA_%-12s %4s  %s" % m.groups())
            i += 1
            comment = "The error codes: name, value, and what ga_strerror() says."
            add_code(codes)
        elif s.startswith(("typedef enum ga_errno_e",)):
            while not src[i].startswith("}"):
                i += 1
            i += 1
        elif s.startswith(("#define", "typedef", "enum", "GA_API")) and "GA__" not in s:
            code = [line]
            if s.startswith("#define"):
                while code[-1].rstrip().endswith("\\"):
                    i += 1
                    code.append(src[i])
            else:  # up to the ';' that closes it
                depth = line.count("{") - line.count("}")
                while depth > 0 or not code[-1].rstrip().endswith(";"):
                    i += 1
                    code.append(src[i])
                    depth += src[i].count("{") - src[i].count("}")
            i += 1
            add_code([re.sub(r"^GA_API ", "", c) for c in code])
        else:
            if not s:
                flush_comment()
            i += 1
    flush_comment()
    return items


def to_roff(lines, version, root):
    out = []
    for kind, data in blocks(lines):
        if kind == "title":
            name, section, desc = data
            out += ['.TH %s %s "" "globalalloc %s" "globalalloc"' % (name.upper(), section, version),
                    ".SH NAME", "%s \\- %s" % (roff_escape(name), roff_inline(desc))]
        elif kind == "sh":
            out.append('.SH "%s"' % data)
        elif kind == "ss":
            out.append('.SS "%s"' % data)
        elif kind == "para":
            out += [".PP"] + [roff_inline(x) for x in data]
        elif kind == "code":
            out += roff_code(data)
        elif kind == "def":
            term, desc = data
            out += [".TP", roff_inline(term)] + [roff_inline(x) for x in desc]
        elif kind == "item":
            out += [".IP \\(bu 2"] + [roff_inline(x) for x in data]
        elif kind == "header":
            for what, item in header_items(root + "/" + data):
                if what == "ss":
                    out.append('.SS "%s"' % roff_escape(item))
                elif what == "code":
                    out += [".PP"] + roff_code(item)
                else:  # a comment: plain text (its '*' are multiplications, not emphasis)
                    out += [".RS 8", roff_escape(item), ".RE"]
    return "\n".join(out) + "\n"


# ---- the --help text ---------------------------------------------------------------------


def plain(s):
    s = re.sub(r"`([^`]*)`", r"\1", s)
    return re.sub(r"\*([^*\s][^*]*)\*", r"\1", s)


def to_text(lines):
    out = []
    for kind, data in blocks(lines):
        if kind == "title":
            out += ["NAME", "    %s - %s" % (data[0], plain(data[2]))]
        elif kind == "sh":
            out += ["", data]
        elif kind == "ss":
            out += ["", "  " + data]
        elif kind == "para":
            out += ["    " + plain(x) for x in data] + [""]
        elif kind == "code":
            out += ["    " + x if x else "" for x in data] + [""]
        elif kind == "def":
            term, desc = plain(data[0]), [plain(x) for x in data[1]]
            if len(term) < 12:
                out.append("    %-12s%s" % (term, desc[0]))
                desc = desc[1:]
            else:
                out.append("    " + term)
            out += [" " * 16 + x for x in desc]
        elif kind == "item":
            out += ["    - " + plain(data[0])] + ["      " + plain(x) for x in data[1:]]
    text = "\n".join(out).strip("\n") + "\n"
    return re.sub(r"\n\n\n+", "\n\n", re.sub(r"\n\n(?=\n)", "\n", text))


def c_lines(text):
    """The text as a NULL-terminated array of lines (one string literal would pass the 4095
    characters ISO C guarantees)."""
    body = "".join('    "%s",\n' % x.replace("\\", "\\\\").replace('"', '\\"')
                   for x in text.rstrip("\n").split("\n"))
    return ("/* Generated by docs/man/mkman.py from docs/man/globalalloc.1.md: edit that. */\n"
            "static const char *const help_lines[] = {\n" + body + "    NULL};\n")


def main(argv):
    mode, src, dst = argv[1], argv[2], argv[3]
    opts = dict(zip(argv[4::2], argv[5::2]))
    lines = open(src).read().split("\n")
    if mode == "roff":
        result = to_roff(lines, opts.get("--version", ""), opts.get("--root", "."))
    elif mode == "help":
        result = c_lines(to_text(lines))
    else:
        sys.exit("mkman.py: mode is roff or help")
    with open(dst, "w") as f:
        f.write(result)


if __name__ == "__main__":
    main(sys.argv)
