#!/usr/bin/env python3
"""check_layout.py: the layout invariants of qtrain (issue 8), checked in CI (CTest: layout).

1. The catalogue: every op family F (one header kernels/F.h each) has all of
       kernels/cpu/F.c        the C reference (its body in that file or in its one F_impl.h)
       kernels/cuda/F.cu      the CUDA kernels and launchers
       tests/test_F.c         the CPU suite
       tests/cuda/test_cuda_F.c  the CUDA suite (emulated, and on a GPU where one exists)
       bench/bench_F.c        the benchmark
   unless EXCEPTIONS below names the missing file with its reason; and every file in those
   places that looks like a family file belongs to a family (no stray names).
2. The layers: base/ includes nothing of ours but base/; kernels/ includes only base/,
   kernels/ (family headers, CPU helpers, its own _impl.h, common.cuh) and the one
   compatibility header the build selects ("qt_cuda_compat.h"), never host/, include/qtrain/
   (the runtime's API) or tests/.

Usage: python3 scripts/check_layout.py [--root DIR]   exit 0 when clean, 1 listing problems
       python3 scripts/check_layout.py --self-test    shows each rule can fail
"""
import argparse
import os
import re
import shutil
import sys
import tempfile

# Files a family may lack, and why. Keys: (family, kind), kind in cpu, cuda, test, cuda_test,
# bench.
EXCEPTIONS = {}

# Non-family files that live beside the family files, and why.
NON_FAMILY = {
    "tests/cuda/test_cuda_backend.c": "a whole training step on the CUDA backend vs the CPU",
    "bench/bench_dist.c": "data-parallel training end to end (2 ranks vs 1 over MPI), like "
    "bench_train: no op family",
    "tests/cuda/test_cuda_cost_model.c": "the cost model of every family's launchers "
    "(base/cost.h), the backend's launch records and qtrain bench step (issue 10)",
}

KINDS = {
    "cpu": "kernels/cpu/{f}.c",
    "cuda": "kernels/cuda/{f}.cu",
    "test": "tests/test_{f}.c",
    "cuda_test": "tests/cuda/test_cuda_{f}.c",
    "bench": "bench/bench_{f}.c",
}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def families(root):
    kdir = os.path.join(root, "kernels")
    return sorted(n[:-2] for n in os.listdir(kdir) if n.endswith(".h"))


def check_catalogue(root, problems):
    fams = families(root)
    for f in fams:
        for kind, pattern in KINDS.items():
            path = pattern.format(f=f)
            exists = os.path.isfile(os.path.join(root, path))
            if not exists and (f, kind) not in EXCEPTIONS:
                problems.append(f"catalogue: family {f} has no {path}")
            if exists and (f, kind) in EXCEPTIONS:
                problems.append(f"catalogue: {path} exists but is listed as an exception "
                                f"({EXCEPTIONS[(f, kind)]}); remove the exception")
    # Reverse: family-named files must belong to a family.
    def stray(dirpath, regex, kind):
        full = os.path.join(root, dirpath)
        if not os.path.isdir(full):
            return
        for name in sorted(os.listdir(full)):
            m = re.fullmatch(regex, name)
            rel = f"{dirpath}/{name}"
            if m and m.group(1) not in fams and rel not in NON_FAMILY:
                problems.append(f"catalogue: {rel} names no family (kernels/{m.group(1)}.h "
                                f"does not exist); rename it or list it in NON_FAMILY")
    stray("kernels/cpu", r"([a-z0-9_]+)\.c", "cpu")
    stray("kernels/cuda", r"([a-z0-9_]+)\.cu", "cuda")
    stray("tests/cuda", r"test_cuda_([a-z0-9_]+)\.c", "cuda_test")
    # One _impl.h per family, named after it.
    cpu = os.path.join(root, "kernels/cpu")
    if os.path.isdir(cpu):
        for name in sorted(os.listdir(cpu)):
            m = re.fullmatch(r"([a-z0-9_]+)_impl\.h", name)
            if m and m.group(1) not in fams:
                problems.append(f"catalogue: kernels/cpu/{name} is not the _impl.h of a family")


def sources(root, top):
    for dirpath, _, names in os.walk(os.path.join(root, top)):
        for name in sorted(names):
            if name.endswith((".c", ".h", ".cu", ".cuh")):
                yield os.path.relpath(os.path.join(dirpath, name), root)


def check_layers(root, problems):
    for path in sources(root, "base"):
        for inc in INCLUDE_RE.findall(open(os.path.join(root, path)).read()):
            if "/" in inc and not inc.startswith("base/"):
                problems.append(f"layers: {path} includes \"{inc}\": base/ includes only base/")
            if "/" not in inc and not os.path.isfile(os.path.join(root, "base", inc)):
                problems.append(f"layers: {path} includes \"{inc}\", which is not in base/")
    for path in sources(root, "kernels"):
        here = os.path.dirname(path)
        for inc in INCLUDE_RE.findall(open(os.path.join(root, path)).read()):
            if inc == "qt_cuda_compat.h":
                if not path.startswith("kernels/cuda/"):
                    problems.append(f"layers: {path} includes the CUDA compatibility header")
                continue
            if inc.startswith(("host/", "tests/", "qtrain/", "include/")) or "cuemu" in inc:
                problems.append(f"layers: {path} includes \"{inc}\": kernels include only "
                                "base/, kernels/ and the selected qt_cuda_compat.h")
            elif inc.startswith("base/") or inc.startswith("kernels/"):
                continue
            elif not os.path.isfile(os.path.join(root, here, inc)):
                problems.append(f"layers: {path} includes \"{inc}\", found neither beside it "
                                "nor in base/ or kernels/")


def check(root):
    problems = []
    check_catalogue(root, problems)
    check_layers(root, problems)
    return problems


def self_test():
    """Builds small trees that break one rule each and checks that each is reported."""
    def tree(files):
        d = tempfile.mkdtemp(prefix="qt_layout_")
        for rel, text in files.items():
            p = os.path.join(d, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as fh:
                fh.write(text)
        return d
    good = {
        "kernels/foo.h": '#include "base/status.h"\n',
        "kernels/cpu/foo.c": '#include "kernels/foo.h"\n#include "foo_impl.h"\n',
        "kernels/cpu/foo_impl.h": "\n",
        "kernels/cuda/foo.cu": '#include "qt_cuda_compat.h"\n#include "common.cuh"\n',
        "kernels/cuda/common.cuh": "\n",
        "tests/test_foo.c": "\n",
        "tests/cuda/test_cuda_foo.c": "\n",
        "bench/bench_foo.c": "\n",
        "base/status.h": "#include <stdio.h>\n",
    }
    cases = [
        ("a clean tree", {}, None),
        ("a missing benchmark", {"bench/bench_foo.c": None}, "has no bench/bench_foo.c"),
        ("a kernel including host/", {"kernels/cuda/foo.cu": '#include "host/model.h"\n'},
         "kernels include only"),
        ("a kernel including the emulator", {"kernels/cpu/foo.c": '#include "cuemu.h"\n'},
         "kernels include only"),
        ("base/ including kernels/", {"base/status.h": '#include "kernels/foo.h"\n'},
         "base/ includes only base/"),
        ("a stray CUDA file", {"kernels/cuda/bar.cu": "\n"}, "kernels/cuda/bar.cu names no family"),
    ]
    failed = 0
    for what, change, expect in cases:
        files = dict(good)
        for k, v in change.items():
            if v is None:
                files.pop(k)
            else:
                files[k] = v
        d = tree(files)
        try:
            got = check(d)
        finally:
            shutil.rmtree(d)
        ok = (not got) if expect is None else any(expect in p for p in got)
        print(f"self-test: {what}: {'ok' if ok else 'FAILED'}" + ("" if ok else f" {got}"))
        failed += not ok
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    problems = check(os.path.abspath(args.root))
    for p in problems:
        print(p)
    fams = families(os.path.abspath(args.root))
    if problems:
        print(f"check_layout: {len(problems)} problem(s)")
        return 1
    print(f"check_layout: {len(fams)} families, each with its reference, kernel, tests and "
          f"benchmark ({len(EXCEPTIONS)} listed exceptions); layers clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
