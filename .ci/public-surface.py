#!/usr/bin/env python3
"""The library's public surface, counted from its rustdoc HTML.

Run after `cargo doc --no-deps -p hoist-oci` (remove target/doc/hoist first: rustdoc leaves the pages
of items that are no longer public behind). Prints the number of public modules, item pages (by
kind; a re-export's redirect page is not an item) and inherent public methods.

  .ci/public-surface.py [DOCDIR]            counts
  .ci/public-surface.py [DOCDIR] --list     and every public module and item
  .ci/public-surface.py [DOCDIR] --foreign  and the third-party types in public signatures (item
                                            declarations and inherent methods; trait impls aside)
"""
import glob
import html as H
import os
import re
import sys
from collections import Counter, defaultdict

args = [a for a in sys.argv[1:] if not a.startswith('-')]
root = args[0] if args else 'target/doc/hoist'
KINDS = ('struct', 'enum', 'fn', 'trait', 'type', 'constant', 'static', 'macro', 'union')
STD = ('core::', 'alloc::', 'std::')


_DEP_NAMES = None


def dep_names():
    """Type names declared by hoist-oci's direct dependencies and not by hoist (name -> crate)."""
    global _DEP_NAMES
    if _DEP_NAMES is None:
        _DEP_NAMES = {}
        lock = open('Cargo.lock').read()
        versions = dict(re.findall(r'name = "([^"]+)"\nversion = "([^"]+)"', lock))
        manifest = open('crates/hoist/Cargo.toml').read().split('[dependencies]')[1].split('[dev-')[0]
        deps = re.findall(r'^([A-Za-z0-9_-]+)', manifest, re.M)
        own = set()
        for src in glob.glob('crates/hoist/src/**/*.rs', recursive=True):
            own |= set(re.findall(r'(?:struct|enum|type|trait) ([A-Z][A-Za-z0-9]+)', open(src).read()))
        home = os.environ.get('CARGO_HOME', os.path.expanduser('~/.cargo'))
        for dep in deps:
            if dep not in versions:
                continue
            for src in glob.glob(f"{home}/registry/src/*/{dep}-{versions[dep]}/src/**/*.rs",
                                 recursive=True):
                body = open(src, encoding='utf-8', errors='replace').read()
                for n in re.findall(r'pub (?:struct|enum|type|trait) ([A-Z][A-Za-z0-9]+)', body):
                    if n not in own:
                        _DEP_NAMES.setdefault(n, dep.replace('-', '_'))
    return _DEP_NAMES


def pages():
    """(item path, kind, html) of every item page that is not a redirect."""
    for d, _, files in os.walk(root):
        for f in files:
            kind = f.split('.', 1)[0]
            if kind not in KINDS or not f.endswith('.html'):
                continue
            text = open(os.path.join(d, f), encoding='utf-8').read()
            if '<title>Redirection</title>' in text[:600]:
                continue
            module = os.path.relpath(d, os.path.dirname(root)).replace(os.sep, '::')
            yield f"{module}::{f[len(kind) + 1:-5]}", kind, text


def signatures(text):
    """The item declaration and the inherent methods' headers of one page."""
    parts = re.findall(r'<pre class="rust item-decl">(.*?)</pre>', text, re.S)
    section = inherent(text)
    if section:
        parts += re.findall(r'<h4 class="code-header">(.*?)</h4>', section, re.S)
    return parts


def inherent(text):
    """The inherent implementations of a page (up to its trait, auto-trait or blanket impls)."""
    start = text.find('id="implementations-list"')
    if start < 0:
        return ''
    ends = [i for i in (text.find(m, start) for m in (
        'id="trait-implementations"', 'id="synthetic-implementations"',
        'id="blanket-implementations"')) if i > start]
    return text[start:min(ends) if ends else len(text)]


modules = sorted(os.path.relpath(d, os.path.dirname(root)).replace(os.sep, '::')
                 for d, _, files in os.walk(root) if 'index.html' in files)
items, methods, names, foreign = Counter(), 0, [], defaultdict(set)
for path, kind, text in pages():
    items[kind] += 1
    names.append(f"{path} ({kind})")
    sigs = signatures(text)
    if kind in ('struct', 'enum', 'union'):
        methods += len(re.findall(r'id="method\.', inherent(text)))
    if '--foreign' in sys.argv:
        for s in sigs:
            for t in re.findall(r'title="(?:struct|enum|trait|type|union) ([^"]+)"', s):
                if not t.startswith(STD) and not t.startswith('hoist::'):
                    foreign[t].add(path)
            # Dependencies are not documented under --no-deps: their types are plain text. Names
            # only a direct dependency declares (and hoist does not) are reported as that crate's.
            # (Variants, and names the page links to the standard library, are not candidates.)
            plain = re.sub(r'//.*', '', H.unescape(re.sub(r'<[^>]+>', '', s)))
            local = set(re.findall(r'id="variant\.([A-Za-z0-9_]+)"', text))
            local |= {t.rsplit('::', 1)[-1] for t in re.findall(r'title="[a-z]+ ([^"]+)"', text)
                      if t.startswith(STD)}
            for n in set(re.findall(r'\b([A-Z][A-Za-z0-9]+)\b', plain)) - local:
                if n in dep_names():
                    foreign[f"{dep_names()[n]}::{n} (by name)"].add(path)

print(f"public modules: {len(modules)}")
print(f"public item pages: {sum(items.values())} "
      f"({', '.join(f'{k} {v}' for k, v in sorted(items.items()))})")
print(f"inherent public methods: {methods}")
if '--list' in sys.argv:
    print('\n'.join(f"mod {m}" for m in modules))
    print('\n'.join(f"item {n}" for n in sorted(names)))
if '--foreign' in sys.argv:
    for t, where in sorted(foreign.items()):
        print(f"{t}: {len(where)} items, e.g. {', '.join(sorted(where)[:4])}")
