#!/usr/bin/env python3
"""check_ptxas.py: fail when ptxas reports register spills or local memory for CUDA kernels.

Three ways to feed it (one per call):

  check_ptxas.py [options] -- nvcc -arch=sm_80 -c kernel.cu -o kernel.o [more nvcc flags]
      runs the nvcc command (adding -Xptxas -v if absent), passes its output through, and
      checks the "ptxas info" resource report;
  check_ptxas.py [options] --log ptxas.log [more logs]
      checks saved nvcc/ptxas -v output;
  check_ptxas.py [options] --objects a.o b.o
      runs `cuobjdump -res-usage` on built objects (needs cuobjdump from the CUDA toolkit).

A function fails if it has spill stores or loads, a stack frame (local memory: arrays indexed
at run time, device-side calls that need a stack, printf), or lmem; unless its mangled or
demangled name matches an --allow regular expression. The exit status is non-zero if nvcc
failed, if any function fails, or if no resource report was found at all (so a changed output
format cannot make the check pass vacuously).

Options:
  --allow REGEX        exempt matching functions (repeatable)
  --max-stack BYTES    allowed stack frame per function (default 0)
  --max-registers N    also fail above N registers per thread (default: no limit)
  --quiet              print only failures
"""
import argparse
import re
import shutil
import subprocess
import sys

ENTRY = re.compile(r"Compiling entry function '([^']+)' for '([^']+)'")
PROPS = re.compile(r"Function properties for (\S+)")
FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers")
SMEM = re.compile(r"(\d+) bytes smem")
LMEM = re.compile(r"(\d+) bytes lmem")
# cuobjdump -res-usage:  Function _Z1kPf:\n  REG:8 STACK:0 SHARED:0 LOCAL:0 ...
OBJ_FUNC = re.compile(r"^\s*Function (\S+?):\s*$")
OBJ_RES = re.compile(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)")


def new_record(name):
    return {"name": name, "regs": None, "smem": 0, "stack": 0, "spill_st": 0, "spill_ld": 0,
            "lmem": 0, "arch": ""}


def parse_ptxas(text):
    """Resource records from `ptxas -v` output, one per function (entry or device function)."""
    records = {}
    current = None
    arch = ""
    for line in text.splitlines():
        m = ENTRY.search(line)
        if m:
            arch = m.group(2)
            current = records.setdefault((m.group(1), arch), new_record(m.group(1)))
            current["arch"] = arch
            continue
        m = PROPS.search(line)
        if m:
            current = records.setdefault((m.group(1), arch), new_record(m.group(1)))
            current["arch"] = arch
            continue
        if current is None:
            continue
        m = FRAME.search(line)
        if m:
            current["stack"] = int(m.group(1))
            current["spill_st"] = int(m.group(2))
            current["spill_ld"] = int(m.group(3))
        m = USED.search(line)
        if m:
            current["regs"] = int(m.group(1))
            s = SMEM.search(line)
            if s:
                current["smem"] = int(s.group(1))
            lm = LMEM.search(line)
            if lm:
                current["lmem"] = int(lm.group(1))
    return list(records.values())


def parse_cuobjdump(text):
    records = []
    current = None
    for line in text.splitlines():
        m = OBJ_FUNC.match(line)
        if m:
            current = new_record(m.group(1))
            records.append(current)
            continue
        m = OBJ_RES.search(line)
        if m and current is not None:
            current["regs"] = int(m.group(1))
            current["stack"] = int(m.group(2))
            current["smem"] = int(m.group(3))
            current["lmem"] = int(m.group(4))
    return records


def asks_for_report(command):
    """True if the nvcc command already makes ptxas print its resource report."""
    for i, a in enumerate(command):
        if a in ("--resource-usage", "-res-usage"):
            return True
        if a.startswith(("-Xptxas=", "--ptxas-options=")) and re.search(r"(^|[=,])(-v|--verbose)\b", a):
            return True
        if a in ("-Xptxas", "--ptxas-options") and i + 1 < len(command) and \
                re.search(r"(^|,)(-v|--verbose)\b", command[i + 1]):
            return True
    return False


def demangle(names):
    tool = shutil.which("c++filt")
    if not tool or not names:
        return {n: n for n in names}
    out = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True).stdout
    lines = out.splitlines()
    return {n: (lines[i] if i < len(lines) else n) for i, n in enumerate(names)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--allow", action="append", default=[])
    ap.add_argument("--max-stack", type=int, default=0)
    ap.add_argument("--max-registers", type=int, default=None)
    ap.add_argument("--log", nargs="+")
    ap.add_argument("--objects", nargs="+")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if sum(bool(x) for x in (command, args.log, args.objects)) != 1:
        ap.error("give exactly one of: -- <nvcc command>, --log FILE..., --objects FILE...")

    if command:
        if not asks_for_report(command):
            command = command + ["-Xptxas", "-v"]
        proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            print("check_ptxas: the command failed (exit %d): %s" % (proc.returncode, " ".join(command)))
            return proc.returncode
        records = parse_ptxas(proc.stdout)
    elif args.log:
        text = ""
        for path in args.log:
            with open(path, encoding="utf-8", errors="replace") as f:
                text += f.read() + "\n"
        records = parse_ptxas(text)
    else:
        tool = shutil.which("cuobjdump")
        if not tool:
            print("check_ptxas: cuobjdump not found; put the CUDA toolkit's bin/ on PATH, or "
                  "pass the nvcc command instead")
            return 2
        proc = subprocess.run([tool, "-res-usage"] + args.objects, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stdout.write(proc.stdout + proc.stderr)
            return proc.returncode
        records = parse_cuobjdump(proc.stdout)

    if not records:
        print("check_ptxas: no ptxas resource report found (is -Xptxas -v reaching ptxas?)")
        return 2
    names = demangle([r["name"] for r in records])
    allow = [re.compile(a) for a in args.allow]
    failures = 0
    for r in records:
        pretty = names[r["name"]]
        problems = []
        if r["spill_st"] or r["spill_ld"]:
            problems.append("spills %d B stores, %d B loads" % (r["spill_st"], r["spill_ld"]))
        if r["stack"] > args.max_stack:
            problems.append("stack frame %d B (local memory)" % r["stack"])
        if r["lmem"]:
            problems.append("lmem %d B" % r["lmem"])
        if args.max_registers is not None and r["regs"] is not None and r["regs"] > args.max_registers:
            problems.append("%d registers > %d" % (r["regs"], args.max_registers))
        allowed = any(a.search(r["name"]) or a.search(pretty) for a in allow)
        status = "ok" if not problems else ("allowed" if allowed else "FAIL")
        if problems and not allowed:
            failures += 1
        if not args.quiet or status == "FAIL":
            print("check_ptxas: %-7s %-8s regs %-4s smem %-6d stack %-5d spill %d/%d  %s%s" % (
                status, r["arch"] or "-", r["regs"] if r["regs"] is not None else "-", r["smem"],
                r["stack"], r["spill_st"], r["spill_ld"], pretty,
                ("  <- " + "; ".join(problems)) if problems else ""))
    if failures:
        print("check_ptxas: %d function(s) spill or use local memory; fix them, or exempt them "
              "with --allow REGEX when that is intended" % failures)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
