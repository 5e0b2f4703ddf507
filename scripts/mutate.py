#!/usr/bin/env python3
"""Process-level mutation testing of `sail run` on hostile GGUF files (issue #11).

Starts from the fuzz corpus's tiny, valid pair (fuzz/corpus/gguf/dense.gguf + vision.gguf),
mutates the language file or the vision file -- structurally (counts, types, offsets, keys,
epsilons, alignment, token strings, dimensions, names) as well as by byte flips and cuts --
and runs each through `sail run` with a timeout. Every run must end in success or a clean
error (exit status 1): a signal, a panic or a hang is counted and its input kept.

    scripts/mutate.py --sail target/release/sail [--count 2000] [--jobs 2] [--timeout 60] [--seed 1]

Prints the counts per outcome and exits non-zero if any run crashed, panicked or hung. A
documented long run (see README); CI runs a few dozen as a smoke test.
"""

import argparse
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# GGUF value types (gguf.h)
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}
INTERESTING = [0, 1, 2, 3, 7, 8, 16, 31, 32, 64, 255, 256, 1023, 1024, 1025, 4096, 65535, 65536,
               2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]


class Reader:
    def __init__(self, b):
        self.b, self.p = b, 0

    def take(self, n):
        if self.p + n > len(self.b):
            raise ValueError("truncated")
        s = self.b[self.p:self.p + n]
        self.p += n
        return s

    def u(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        return self.take(self.u("<Q")).decode("utf-8", "surrogateescape")

    def value(self, t):
        if t == STRING:
            return self.string()
        if t == ARRAY:
            et, n = self.u("<I"), self.u("<Q")
            return (et, [self.value(et) for _ in range(n)])
        return self.u(SCALAR[t])


def parse(b):
    r = Reader(b)
    assert r.take(4) == b"GGUF"
    version, n_t, n_kv = r.u("<I"), r.u("<Q"), r.u("<Q")
    kvs = []
    for _ in range(n_kv):
        k = r.string()
        t = r.u("<I")
        kvs.append([k, t, r.value(t)])
    tensors = []
    for _ in range(n_t):
        name = r.string()
        nd = r.u("<I")
        ne = [r.u("<Q") for _ in range(nd)]
        tensors.append([name, ne, r.u("<I"), r.u("<Q")])
    align = next((v for k, t, v in kvs if k == "general.alignment" and t == U32), 32) or 32
    start = -(-r.p // align) * align
    return {"version": version, "kvs": kvs, "tensors": tensors, "data": b[start:], "align": align}


def put_str(s):
    b = s.encode("utf-8", "surrogateescape")
    return struct.pack("<Q", len(b)) + b


def put_value(t, v):
    if t == STRING:
        return put_str(v)
    if t == ARRAY:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(put_value(et, x) for x in items)
    fmt = SCALAR[t]
    if fmt in ("<f", "<d"):
        return struct.pack(fmt, float(v))
    bits = struct.calcsize(fmt) * 8
    v = int(v) % (1 << bits)
    if fmt[1].islower() and fmt[1] != "?" and v >= 1 << (bits - 1):
        v -= 1 << bits
    if fmt == "<?":
        return struct.pack("<B", 1 if v else 0)
    return struct.pack(fmt, v)


def serialize(g, counts=None):
    n_t, n_kv = counts if counts else (len(g["tensors"]), len(g["kvs"]))
    h = b"GGUF" + struct.pack("<IQQ", g["version"], n_t, n_kv)
    for k, t, v in g["kvs"]:
        h += put_str(k) + struct.pack("<I", t) + put_value(t, v)
    for name, ne, ty, off in g["tensors"]:
        h += put_str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d % 2**64) for d in ne)
        h += struct.pack("<IQ", ty % 2**32, off % 2**64)
    a = g["align"]
    h += b"\0" * ((-len(h)) % a)
    return h + g["data"]


def numeric(rng):
    v = rng.choice(INTERESTING)
    return v if rng.random() < 0.8 else -v


def mutate_struct(g, rng):
    """One attacker's change to a parsed file; returns a description."""
    kvs, tensors = g["kvs"], g["tensors"]
    what = rng.randrange(12)
    if what <= 2 and kvs:  # a value
        kv = rng.choice(kvs)
        k, t, v = kv
        if t in (F32, F64):
            kv[2] = rng.choice([0.0, -1.0, -1e-6, float("nan"), float("inf"), -float("inf"), 1e30, 1e-30, 0.5])
        elif t == STRING:
            kv[2] = rng.choice(["", "qwen3", "qwen3moe", "clip", "llama", "../../etc/passwd", "/dev/zero", "x" * 70000, "gpt2", "v1", "v3"])
        elif t == ARRAY:
            et, items = v
            choice = rng.randrange(4)
            if items and choice == 0:
                i, j = rng.randrange(len(items)), rng.randrange(len(items))
                items[i] = items[j]
            elif items and choice == 1:
                del items[rng.randrange(len(items)):]
            elif items and choice == 2 and et == STRING:
                items[rng.randrange(len(items))] = rng.choice(["", "[EMPTY_3]", "[PAD7]", "!", "x" * 100000])
            elif items and et in SCALAR and et not in (F32, F64, BOOL):
                items[rng.randrange(len(items))] = numeric(rng)
            elif items and et == F32:
                items[rng.randrange(len(items))] = float("nan")
        else:
            kv[2] = numeric(rng)
        return f"value of {k}"
    if what == 3 and kvs:  # another type for a key
        kv = rng.choice(kvs)
        kv[1], kv[2] = rng.choice([(I32, 2), (U64, 2**40), (F32, 2.0), (STRING, "2"), (BOOL, True), (ARRAY, (U32, [1, 2]))])
        return f"type of {kv[0]}"
    if what == 4 and kvs:  # drop or duplicate a key
        i = rng.randrange(len(kvs))
        if rng.random() < 0.5:
            k = kvs.pop(i)[0]
            return f"dropped {k}"
        kvs.append([kvs[i][0], kvs[i][1], kvs[i][2]])
        return f"duplicated {kvs[i][0]}"
    if what == 5:  # alignment
        a = rng.choice([8, 16, 64, 0, 3, 2**20, 2**31])
        kvs[:] = [kv for kv in kvs if kv[0] != "general.alignment"] + [["general.alignment", U32, a]]
        if a and a & (a - 1) == 0 and a <= 2**20:
            g["align"] = a
        return f"alignment {a}"
    if what == 6 and tensors:  # a tensor's type
        t = rng.choice(tensors)
        t[2] = rng.choice([0, 1, 2, 4, 8, 12, 14, 30, 31, 39, 99, 2**31, 2**32 - 1])
        return f"type id of {t[0]}"
    if what == 7 and tensors:  # a tensor's offset
        t = rng.choice(tensors)
        t[3] = rng.choice([0, t[3] + 16, t[3] + 32, t[3] - 32, 2**63, 2**64 - 8, rng.choice(tensors)[3]])
        return f"offset of {t[0]}"
    if what == 8 and tensors:  # a dimension
        t = rng.choice(tensors)
        d = rng.randrange(len(t[1]))
        t[1][d] = rng.choice([0, 1, t[1][d] * 2, t[1][d] // 2 or 1, 2**31, 2**62, 2**63, 2**64 - 1])
        return f"dim {d} of {t[0]}"
    if what == 9 and tensors:  # a name
        t = rng.choice(tensors)
        t[0] = rng.choice([rng.choice(tensors)[0], t[0] + "x", "", "x" * 70, t[0].replace("0", "9")])
        return "tensor name"
    if what == 10 and tensors:  # drop a tensor, or its data's tail
        if rng.random() < 0.5:
            tensors.pop(rng.randrange(len(tensors)))
            return "dropped a tensor"
        g["data"] = g["data"][: rng.randrange(len(g["data"]) + 1)]
        return "cut the data"
    # a count in the header
    return "counts"


def mutate(base, rng):
    b = bytearray(base)
    mode = rng.random()
    if mode < 0.7:
        g = parse(bytes(b))
        desc = [mutate_struct(g, rng) for _ in range(1 + (rng.random() < 0.3))]
        counts = None
        if "counts" in desc:
            counts = (len(g["tensors"]) + rng.choice([-1, 1, 2**20, 2**63]), len(g["kvs"]) + rng.choice([-1, 1, 2**31]))
        try:
            return serialize(g, counts), "; ".join(desc)
        except (struct.error, OverflowError, ValueError) as e:
            return bytes(b), f"unserializable ({e})"
    if mode < 0.9:
        for _ in range(1 + rng.randrange(8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b), "bit flips"
    if mode < 0.95:
        return bytes(b[: rng.randrange(len(b))]), "truncated"
    i = rng.randrange(len(b) - 8)
    b[i:i + 8] = struct.pack("<Q", rng.choice(INTERESTING))
    return bytes(b), "an 8-byte integer written at a random offset"


def png(path):
    w = h = 28
    raw = b"".join(b"\0" + bytes((x * 7 + y * 3) % 256 for x in range(w * 3)) for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(path, "wb").write(data)


# An error message this long is a finding too (a file once made sail print 876 MB).
MAX_STDERR = 16 << 10


def classify(rc, err, timed_out):
    if timed_out:
        return "hang"
    if "panicked" in err:
        return "panic"
    if rc < 0:
        return "signal"
    if len(err) > MAX_STDERR:
        return "long-message"
    if rc == 0:
        return "ok"
    if rc == 1:
        return "error"
    return f"exit{rc}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sail", required=True, help="the sail binary")
    ap.add_argument("--count", type=int, default=2000, help="mutated files per kind (language, vision)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=60, help="seconds before a run counts as a hang")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", default=os.path.join(ROOT, "fuzz", "findings", "mutate"), help="where failing inputs go")
    a = ap.parse_args()
    corpus = os.path.join(ROOT, "fuzz", "corpus", "gguf")
    base = {"language": open(os.path.join(corpus, "dense.gguf"), "rb").read(),
            "vision": open(os.path.join(corpus, "vision.gguf"), "rb").read()}
    work = tempfile.mkdtemp(prefix="sail-mutate-")
    llm, vis, img = (os.path.join(work, n) for n in ("base.gguf", "base.mmproj.gguf", "img.png"))
    open(llm, "wb").write(base["language"])
    open(vis, "wb").write(base["vision"])
    png(img)
    jobs = [(kind, i) for i in range(a.count) for kind in ("language", "vision")]
    counts, worst_stderr = {}, 0

    def one(job):
        kind, i = job
        rng = random.Random(a.seed * 1_000_003 + i * 2 + (kind == "vision"))
        data, desc = mutate(base[kind], rng)
        p = os.path.join(work, f"{kind}-{i}.gguf")
        open(p, "wb").write(data)
        m, mm = (p, vis) if kind == "language" else (llm, p)
        cmd = [a.sail, "run", "-m", m, "--mmproj", mm, "--image", img, "-p", "hi", "-n", "2", "-t", "1"]
        try:
            r = subprocess.run(cmd, capture_output=True, timeout=a.timeout, stdin=subprocess.DEVNULL)
            out = classify(r.returncode, r.stderr.decode("utf-8", "replace"), False)
            err_len = len(r.stderr)
            rc = r.returncode
        except subprocess.TimeoutExpired:
            out, err_len, rc = "hang", 0, None
        if out in ("signal", "panic", "hang", "long-message") or out.startswith("exit"):
            os.makedirs(a.keep, exist_ok=True)
            dest = os.path.join(a.keep, f"{kind}-{a.seed}-{i}.gguf")
            shutil.copy(p, dest)
            sig = f" ({signal.Signals(-rc).name})" if rc is not None and rc < 0 else ""
            print(f"{out}{sig}: {kind} #{i}: {desc} -> kept {dest}", flush=True)
        os.remove(p)
        return kind, out, err_len

    with ThreadPoolExecutor(a.jobs) as ex:
        for kind, out, err_len in ex.map(one, jobs):
            counts[(kind, out)] = counts.get((kind, out), 0) + 1
            worst_stderr = max(worst_stderr, err_len)
    shutil.rmtree(work, ignore_errors=True)
    bad = 0
    for kind in ("language", "vision"):
        c = {o: n for (k, o), n in counts.items() if k == kind}
        print(f"{kind}: {sum(c.values())} mutated files: " + ", ".join(f"{o} {n}" for o, n in sorted(c.items())))
        bad += sum(n for o, n in c.items() if o not in ("ok", "error"))
    sig = sum(n for (k, o), n in counts.items() if o == "signal")
    pan = sum(n for (k, o), n in counts.items() if o == "panic")
    hang = sum(n for (k, o), n in counts.items() if o == "hang")
    long = sum(n for (k, o), n in counts.items() if o == "long-message")
    print(f"signals {sig}, panics {pan}, hangs {hang} (timeout {a.timeout:g} s); messages over {MAX_STDERR} bytes {long}, longest {worst_stderr}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
