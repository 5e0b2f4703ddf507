#!/usr/bin/env python3
"""The CUDA device check, run by scripts/check-cuda.sh on a machine with an NVIDIA GPU.

Python standard library only (no numpy): the lent GPU machine has a python3 but no Rust
toolchain, and the array measures come from the packed `sail-gen compare`.

Order, so that the parity results are on disk before the slow part starts:
  1. the packed binaries start and see a CUDA device (`sail info --devices`);
  2. the tiny golden cases (small-dense, moe-portrait-sharded, small-text) are regenerated with
     `sail-gen` (sha256 checked against case.json), converted at f32 and f16, and run greedily
     on the CPU and on CUDA with the vision encoder and every language layer on the GPU;
     logits and projector outputs are compared with the golden reference and with the CPU run;
  3. unless --skip-2b: a full-size random SAIL-VL2-2B (`sail-gen ckpt --preset 2b`), converted
     --q4_k with the vision tower in f16 and in q8_0, and `sail bench` on CUDA and on the CPU.
cuda-check.json is rewritten after every step; cuda-check.log has every command and its stderr
tail; a short table is printed last. Exit status 0 only if every parity check passed.

--dry-run runs the same steps with `--backend cpu` on the "GPU" side (for a machine without
one): it proves the packing, the library lookup and every command up to the GPU, nothing more.
"""

import argparse
import glob
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time

CASES = ["small-dense", "moe-portrait-sharded", "small-text"]

# Bounds, and where they come from (all already used by the test suite):
# - f32: logits NMSE <= 1e-6 (cli/tests/cli_run.rs, cli/tests/vulkan.rs); projector max rel
#   <= 3e-3, the GPU bound of cli/tests/vulkan.rs (fp16 arithmetic inside GPU kernels; the CPU
#   f32 path is at ~1e-6).
# - f16 weights: logits NMSE <= 1e-5 (tests/tests/llm_gguf.rs, f16 preset); projector max rel
#   <= 1e-2 (tests/tests/vision.rs, f16 tower).
BOUNDS = {
    "f32": {"logits_nmse": 1e-6, "emb_max_rel": 3e-3},
    "f16": {"logits_nmse": 1e-5, "emb_max_rel": 1e-2},
}
# The golden README's token rule: compare while margin > K * sqrt(2) * max(rms(L-R), sqrt(FLOOR) * rms(R)).
TOKEN_K, TOKEN_FLOOR = 5.0, 1e-7


class Check:
    def __init__(self, a):
        self.a = a
        self.t0 = time.time()
        self.out = os.path.abspath(a.out)
        os.makedirs(self.out, exist_ok=True)
        self.work = os.path.abspath(a.work)
        os.makedirs(self.work, exist_ok=True)
        self.bin = os.path.join(self.work, "pack", "bin")
        self.log_f = open(os.path.join(self.out, "cuda-check.log"), "w", encoding="utf-8")
        self.gpu = "cpu" if a.dry_run else "cuda"
        self.report = {
            "schema": 1,
            "dry_run": a.dry_run,
            "gpu_backend": self.gpu,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {},
            "pack": {},
            "parity": {},
            "bench_2b": {},
            "failures": [],
        }

    # ---- output ----
    def log(self, msg):
        line = "[%6.1fs] %s" % (time.time() - self.t0, msg)
        print(line, flush=True)
        self.log_f.write(line + "\n")
        self.log_f.flush()

    def save(self):
        self.report["elapsed_s"] = round(time.time() - self.t0, 1)
        tmp = os.path.join(self.out, ".cuda-check.json.partial")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.report, f, indent=1, allow_nan=True)
            f.write("\n")
        os.replace(tmp, os.path.join(self.out, "cuda-check.json"))

    def fail(self, what):
        self.report["failures"].append(what)
        self.log("FAIL " + what)

    # ---- commands ----
    def run(self, name, argv, timeout, env=None, stdout_file=None):
        """Runs a packed binary (or any argv); returns (rc, stdout, stderr, seconds)."""
        exe = argv[0] if os.sep in argv[0] else os.path.join(self.bin, argv[0])
        cmd = [exe] + [str(x) for x in argv[1:]]
        self.log("$ " + " ".join(cmd))
        t = time.time()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or self.env)
            rc, so, se = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            rc, so, se = 124, (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), "timed out after %ss" % timeout
        except OSError as e:
            rc, so, se = 127, "", str(e)
        dt = time.time() - t
        if stdout_file:
            with open(stdout_file, "w", encoding="utf-8") as f:
                f.write(so)
        tail = "\n".join(se.strip().splitlines()[-8:])
        self.log("  rc %d in %.1fs%s" % (rc, dt, ("\n  | " + tail.replace("\n", "\n  | ")) if tail and rc != 0 else ""))
        return rc, so, se, dt

    def over_budget(self):
        return self.a.budget_s and time.time() - self.t0 > self.a.budget_s

    # ---- 1. machine, libraries, devices ----
    def setup(self):
        m = self.report["machine"]
        m["uname"] = " ".join(platform.uname())
        m["cpus"] = os.cpu_count()
        m["python"] = sys.version.split()[0]
        if shutil.which("nvidia-smi"):
            q = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=60,
            )
            m["nvidia_smi"] = q.stdout.strip() or q.stderr.strip()
        else:
            m["nvidia_smi"] = None
        self.log("machine: %s" % json.dumps(m))
        manifest = os.path.join(self.a.pack, "MANIFEST.txt")
        if os.path.exists(manifest):
            with open(manifest, encoding="utf-8") as f:
                self.report["pack"]["manifest"] = f.read().splitlines()
        self.env = dict(os.environ)
        # the pack: stripped binaries and llama.cpp libraries, xz-compressed to fit the transfer
        shutil.rmtree(os.path.dirname(self.bin), ignore_errors=True)
        with tarfile.open(os.path.join(self.a.pack, "bin.tar.xz")) as t:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12: refuse odd members
                t.extractall(os.path.dirname(self.bin), filter="tar")
            else:
                t.extractall(os.path.dirname(self.bin))
        self.report["pack"]["files"] = {f: os.path.getsize(os.path.join(self.bin, f)) for f in sorted(os.listdir(self.bin))}
        self.log("unpacked %s into %s: %s" % (self.a.pack, self.bin, json.dumps(self.report["pack"]["files"])))
        libdirs = self.find_cuda_libs()
        self.report["machine"]["cuda_lib_dirs"] = libdirs
        self.env["LD_LIBRARY_PATH"] = ":".join(libdirs + [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p])
        if shutil.which("ldd"):
            rc, so, se, _ = self.run("ldd", [shutil.which("ldd"), os.path.join(self.bin, "sail")], 60)
            missing = [l.strip() for l in so.splitlines() if "not found" in l]
            self.report["pack"]["ldd_sail"] = [l.strip() for l in so.splitlines()]
            if missing:
                self.fail("libraries not found for sail: %s (searched %s)" % ("; ".join(missing), libdirs))
                return False
        rc, so, se, _ = self.run("sail", ["sail", "info", "--devices"], 120)
        self.report["machine"]["sail_devices"] = so.strip().splitlines()
        self.log(so.strip())
        if rc != 0:
            self.fail("sail info --devices failed: " + se.strip()[-500:])
            return False
        if not self.a.dry_run and "CUDA0" not in so:
            self.fail("sail sees no CUDA0 device (stderr: %s)" % se.strip()[-800:])
            return False
        self.save()
        return True

    def find_cuda_libs(self):
        """Folders holding the CUDA runtime and cuBLAS the build linked (libcudart.so.13 and
        libcublas(Lt).so.13 for the CUDA 13 wheels, .so.12 on JetPack 6): the CUDA toolkit, the
        driver's or Python's NVIDIA wheels on the machine, or the build machine's wheels (dry run)."""
        want = self.needed_cuda_sonames()
        cands = []
        for v in ("SAIL_CUDA_LIB", "CUDA_HOME", "CUDA_PATH"):
            if os.environ.get(v):
                cands += [os.environ[v], os.path.join(os.environ[v], "lib64"), os.path.join(os.environ[v], "lib")]
        for pat in [
            "/usr/local/cuda/lib64", "/usr/local/cuda/targets/*/lib", "/usr/local/cuda-13*/lib64",
            "/usr/local/cuda-13*/targets/*/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
            "/usr/local/nvidia/lib64", "/opt/*/.venv/lib/python3*/site-packages/nvidia/cu13/lib",
            "/usr/local/lib/python3*/dist-packages/nvidia/cu13/lib", "/usr/lib/python3*/site-packages/nvidia/cu13/lib",
            os.path.expanduser("~/.cache/sail/cuda-13*/site/nvidia/cu13/lib"),
        ]:
            cands += sorted(glob.glob(pat))
        try:  # the running python's own wheels (the GPU image's python3 carries torch's CUDA 13)
            import site  # noqa: PLC0415

            for sp in site.getsitepackages() + [site.getusersitepackages()]:
                cands.append(os.path.join(sp, "nvidia", "cu13", "lib"))
        except Exception:  # noqa: BLE001  (site is optional in embedded pythons)
            pass
        found, dirs = {}, []
        for d in cands:
            for lib in want:
                if lib not in found and os.path.exists(os.path.join(d, lib)):
                    found[lib] = d
                    if d not in dirs:
                        dirs.append(d)
        self.log("CUDA libraries: %s" % (json.dumps(found) if found else "none found in %d candidate folders" % len(cands)))
        missing = [l for l in want if l not in found]
        if missing:
            self.log("not found: %s (ldd decides whether the system's loader finds them anyway)" % missing)
        return dirs

    def needed_cuda_sonames(self):
        """The libcudart/libcublas sonames libggml-cuda.so asks for (its ELF DT_NEEDED entries)."""
        lib = os.path.join(self.bin, "libggml-cuda.so")
        names = []
        try:
            with open(lib, "rb") as f:
                data = f.read()
            for stem in (b"libcudart.so.", b"libcublas.so.", b"libcublasLt.so."):
                i = data.find(stem)
                if i >= 0:
                    j = i + len(stem)
                    while j < len(data) and data[j : j + 1].isdigit():
                        j += 1
                    names.append(data[i:j].decode())
        except OSError:
            pass
        return names or ["libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13"]

    # ---- 2. parity ----
    def regen(self, name, case):
        d = os.path.join(self.work, name)
        ck = os.path.join(d, "ckpt")
        os.makedirs(d, exist_ok=True)
        argv = ["sail-gen", "ckpt"] + case["generator"]["argv"] + ["--assets", self.a.assets, "--out", ck, "--quiet"]
        rc, so, se, dt = self.run("gen", argv, 600)
        if rc != 0:
            self.fail("%s: sail-gen ckpt failed" % name)
            return None
        want = case["generator"].get("sha256") or {}
        got = json.loads(so).get("sha256", {})
        bad = [f for f, h in want.items() if got.get(f) != h]
        if bad:
            self.fail("%s: regenerated files differ from case.json's sha256: %s" % (name, bad))
            return None
        img = None
        if case.get("image"):
            im = case["image"]
            img = os.path.join(d, "image.png")
            rc, so, se, _ = self.run("img", ["sail-gen", "image", "--width", im["width"], "--height", im["height"], "--seed", im["seed"], "--out", img], 120)
            want_img = im.get("sha256") or case.get("preprocess", {}).get("sha256")
            if rc != 0 or (want_img and so.strip() != want_img):
                self.fail("%s: test image differs (%s vs %s)" % (name, so.strip(), want_img))
                return None
        return ck, img, len(want)

    def convert(self, ck, out, flags, timeout=900):
        rc, so, se, dt = self.run("convert", ["sail-convert", ck, "-o", out, "-q"] + flags, timeout)
        return (rc == 0), dt

    def sail_run(self, name, case, gguf, img, backend, tag):
        d = os.path.dirname(gguf)
        lo, eo = os.path.join(d, "logits-%s.npy" % tag), os.path.join(d, "emb-%s.npy" % tag)
        n = len(case["expected"]["generated_ids"])
        argv = ["sail", "run", "-m", gguf, "-p", case["prompt"], "--temp", "0", "--ignore-eos", "-n", n, "--json",
                "--logits-out", lo, "--backend", backend]
        if backend != "cpu":
            argv += ["--gpu-layers", "-1", "--verbose"]
        if img:
            argv += ["--image", img, "--embeddings-out", eo]
        rc, so, se, dt = self.run("run", argv, 600)
        with open(os.path.join(d, "stderr-%s.txt" % tag), "w", encoding="utf-8") as f:
            f.write(se)
        if rc != 0:
            self.fail("%s %s: sail run failed: %s" % (name, tag, se.strip()[-300:]))
            return None
        try:
            v = json.loads(so)
        except ValueError:
            self.fail("%s %s: stdout is not JSON" % (name, tag))
            return None
        offload = [l.strip() for l in se.splitlines() if "offloaded" in l or "CUDA0 model buffer" in l or "CUDA0 KV buffer" in l]
        return {"json": v, "logits": lo, "emb": eo if img else None, "wall_s": round(dt, 2), "gpu_log": offload}

    def compare(self, got, ref):
        rc, so, se, _ = self.run("cmp", ["sail-gen", "compare", got, ref], 120)
        if rc != 0:
            return {"error": se.strip()[-300:]}
        return json.loads(so)

    @staticmethod
    def le(x, bound):
        return x is not None and not (isinstance(x, float) and math.isnan(x)) and x <= bound

    def safe_prefix(self, cmp, margins):
        """Tokens comparable under the golden token rule, given logits measures vs a reference."""
        if "rms_diff" not in cmp or cmp["rms_diff"] is None:
            return 0
        bound = TOKEN_K * math.sqrt(2) * max(cmp["rms_diff"], math.sqrt(TOKEN_FLOOR) * cmp["rms_ref"])
        n = 0
        for m in margins:
            if m > bound:
                n += 1
            else:
                break
        return n

    def parity_case(self, name):
        cdir = os.path.join(self.a.golden, name)
        with open(os.path.join(cdir, "case.json"), encoding="utf-8") as f:
            case = json.load(f)
        e = case["expected"]
        res = self.report["parity"].setdefault(name, {})
        g = self.regen(name, case)
        if not g:
            res["ok"] = False
            self.save()
            return
        ck, img, nfiles = g
        res["regenerated_files_sha256_ok"] = nfiles
        ref_logits = os.path.join(cdir, "last_logits.npy")
        ref_emb = os.path.join(cdir, "vision_embeds.npy") if img else None
        margins = e.get("step_top1_margins") or []
        want_tokens = e["generated_ids"]
        case_ok = True
        for prof in ("f32", "f16"):
            gguf = os.path.join(self.work, name, "%s-%s.gguf" % (name, prof))
            ok, dt = self.convert(ck, gguf, ["--" + prof])
            if not ok:
                self.fail("%s %s: conversion failed" % (name, prof))
                case_ok = False
                continue
            r = {"convert_s": round(dt, 2), "bounds": BOUNDS[prof]}
            cpu = self.sail_run(name, case, gguf, img, "cpu", prof + "-cpu")
            gpu = self.sail_run(name, case, gguf, img, self.gpu, prof + "-" + self.gpu + ("-as-gpu" if self.a.dry_run else ""))
            if not cpu or not gpu:
                res[prof] = r
                case_ok = False
                continue
            gj, cj = gpu["json"], cpu["json"]
            r["gpu_log"] = gpu["gpu_log"]
            r["wall_s"] = {"cpu": cpu["wall_s"], "gpu": gpu["wall_s"]}
            r["timings_ms"] = {"cpu": cj.get("timings"), "gpu": gj.get("timings")}
            checks = {}
            checks["prompt_ids_equal_golden"] = gj.get("prompt_token_ids") == e["input_ids"]
            checks["image_tokens_equal_golden"] = gj.get("image_tokens") == e.get("image_tokens", 0)
            checks["tiles_equal_golden"] = gj.get("tiles") == (e.get("tiles") or 0)
            lg = self.compare(gpu["logits"], ref_logits)
            lc = self.compare(gpu["logits"], cpu["logits"])
            lcpu = self.compare(cpu["logits"], ref_logits)
            r["logits_vs_golden"], r["logits_vs_cpu"], r["cpu_logits_vs_golden"] = lg, lc, lcpu
            b = BOUNDS[prof]["logits_nmse"]
            checks["logits_nmse_vs_golden"] = self.le(lg.get("nmse"), b)
            checks["logits_nmse_vs_cpu"] = self.le(lc.get("nmse"), b)
            if img:
                eg = self.compare(gpu["emb"], ref_emb)
                ec = self.compare(gpu["emb"], cpu["emb"])
                r["emb_vs_golden"], r["emb_vs_cpu"] = eg, ec
                b = BOUNDS[prof]["emb_max_rel"]
                checks["emb_max_rel_vs_golden"] = self.le(eg.get("max_rel"), b)
                checks["emb_max_rel_vs_cpu"] = self.le(ec.get("max_rel"), b)
            gt, ct = gj.get("tokens") or [], cj.get("tokens") or []
            # the golden token rule, once against the reference and once against the CPU run
            # (same weights; its logits stand in for the reference's)
            n_safe, n_safe_cpu = self.safe_prefix(lg, margins), self.safe_prefix(lc, margins)
            r["tokens"] = {
                "gpu": gt, "cpu": ct, "golden": want_tokens, "safe_prefix_vs_golden": n_safe, "safe_prefix_vs_cpu": n_safe_cpu,
                "all_equal_golden": gt == want_tokens, "all_equal_cpu": gt == ct,
            }
            checks["tokens_equal_golden_in_safe_prefix"] = len(gt) == len(want_tokens) and gt[:n_safe] == want_tokens[:n_safe]
            checks["tokens_equal_cpu_in_safe_prefix"] = len(gt) == len(ct) and gt[:n_safe_cpu] == ct[:n_safe_cpu]
            r["checks"] = checks
            r["ok"] = all(checks.values())
            for k, v in checks.items():
                if not v:
                    self.fail("%s %s: %s" % (name, prof, k))
            case_ok &= r["ok"]
            res[prof] = r
            self.log("%s %s: logits NMSE vs golden %s, vs CPU %s; projector max rel vs golden %s; tokens %d/%d safe-equal, all equal CPU %s -> %s" % (
                name, prof, fmt(lg.get("nmse")), fmt(lc.get("nmse")), fmt(r.get("emb_vs_golden", {}).get("max_rel")),
                n_safe if checks["tokens_equal_golden_in_safe_prefix"] else 0, len(want_tokens), gt == ct, "ok" if r["ok"] else "FAIL"))
            self.save()
        res["ok"] = case_ok
        self.save()

    # ---- 3. the 2B benchmark ----
    def bench_2b(self):
        b = self.report["bench_2b"]
        d = os.path.join(self.work, "2b")
        ck = os.path.join(d, "ckpt")
        os.makedirs(d, exist_ok=True)
        rc, so, se, dt = self.run("gen2b", ["sail-gen", "ckpt", "--preset", "2b", "--assets", self.a.assets, "--out", ck, "--quiet"], 900)
        b["generate_s"] = round(dt, 1)
        if rc != 0:
            self.fail("2b: sail-gen ckpt --preset 2b failed")
            return
        self.save()
        for label, flags in (("q4_k+vision_f16", ["--q4_k", "--vision-type", "f16"]), ("q4_k+vision_q8_0", ["--q4_k", "--vision-type", "q8_0"])):
            if self.over_budget():
                b[label] = {"skipped": "time budget (--budget-s %s) spent" % self.a.budget_s}
                self.log("2b %s: skipped, time budget spent" % label)
                continue
            gguf = os.path.join(d, "sail-2b-%s.gguf" % label.replace("+", "-"))
            ok, dt = self.convert(ck, gguf, flags, 1200)
            r = {"convert_s": round(dt, 1)}
            b[label] = r
            if not ok:
                self.fail("2b %s: conversion failed" % label)
                continue
            r["gguf_bytes"] = os.path.getsize(gguf)
            mm = gguf[: -len(".gguf")] + ".mmproj.gguf"
            r["mmproj_bytes"] = os.path.getsize(mm) if os.path.exists(mm) else None
            if self.a.dry_run:
                # the "GPU" command would be this very command: not worth its minutes twice
                r["cpu-as-gpu"] = {"skipped": "dry run: same command as the cpu row"}
            for backend in (self.gpu, "cpu") if not self.a.dry_run else ("cpu",):
                if self.over_budget():
                    r[backend] = {"skipped": "time budget (--budget-s %s) spent" % self.a.budget_s}
                    self.log("2b %s bench on %s: skipped, time budget spent" % (label, backend))
                    continue
                be = "cpu" if backend.startswith("cpu") else backend
                argv = ["sail", "bench", "-m", gguf, "--backend", be, "--json", "--tiles", self.a.tiles]
                if be != "cpu":
                    argv += ["--gpu-layers", "-1"]
                rc, so, se, dt = self.run("bench", argv, 900)
                if rc != 0:
                    self.fail("2b %s: sail bench --backend %s failed" % (label, be))
                    continue
                j = json.loads(so)
                r[backend] = {
                    "vision_ms_per_tile": j.get("vision", {}).get("ms_per_tile"),
                    "vision_tiles": j.get("vision", {}).get("tiles"),
                    "prefill_tok_s": j.get("sail", {}).get("prefill_tok_s"),
                    "decode_tok_s": j.get("sail", {}).get("decode_tok_s"),
                    "llama_cpp_decode_tok_s": j.get("llama_cpp", {}).get("decode_tok_s"),
                    "load_ms": j.get("load_ms"),
                    "peak_rss_bytes": j.get("peak_rss_bytes"),
                    "threads": j.get("threads"),
                    "bench_wall_s": round(dt, 1),
                }
                self.save()
        self.save()

    def table(self):
        rows = ["", "== CUDA check%s: %s ==" % (" (DRY RUN: 'GPU' side is --backend cpu)" if self.a.dry_run else "",
                                              (self.report["machine"].get("nvidia_smi") or "no nvidia-smi"))]
        rows.append("%-22s %-4s %-11s %-11s %-11s %-11s %-8s %s" % ("case", "prof", "logit nmse", "vs cpu", "proj rel", "vs cpu", "tokens", "ok"))
        for name, res in self.report["parity"].items():
            for prof in ("f32", "f16"):
                r = res.get(prof)
                if not r or "checks" not in r:
                    rows.append("%-22s %-4s %s" % (name, prof, "not run / failed before comparing"))
                    continue
                t = r["tokens"]
                rows.append("%-22s %-4s %-11s %-11s %-11s %-11s %-8s %s" % (
                    name, prof, fmt(r["logits_vs_golden"].get("nmse")), fmt(r["logits_vs_cpu"].get("nmse")),
                    fmt(r.get("emb_vs_golden", {}).get("max_rel")), fmt(r.get("emb_vs_cpu", {}).get("max_rel")),
                    "%d/%d%s" % (t["safe_prefix_vs_golden"], len(t["golden"]), "=" if t["all_equal_cpu"] else "!"),
                    "ok" if r["ok"] else "FAIL"))
        b = self.report["bench_2b"]
        if b:
            rows.append("")
            rows.append("2B bench (%s): %-18s %12s %12s %12s" % ("random weights", "", "vision ms/tile", "prefill t/s", "decode t/s"))
            for label in ("q4_k+vision_f16", "q4_k+vision_q8_0"):
                r = b.get(label) or {}
                for be in (self.gpu if not self.a.dry_run else "cpu-as-gpu", "cpu"):
                    x = r.get(be)
                    if x and x.get("skipped"):
                        rows.append("  %-18s %-12s %s" % (label, be, x["skipped"]))
                    elif x:
                        rows.append("  %-18s %-12s %12s %12s %12s" % (label, be, fmt(x["vision_ms_per_tile"], 1), fmt(x["prefill_tok_s"], 1), fmt(x["decode_tok_s"], 1)))
                if r.get("skipped"):
                    rows.append("  %-18s %s" % (label, r["skipped"]))
        rows.append("failures: %d%s" % (len(self.report["failures"]), (" (" + "; ".join(self.report["failures"][:6]) + ")") if self.report["failures"] else ""))
        rows.append("elapsed: %.0f s; JSON: %s" % (time.time() - self.t0, os.path.join(self.out, "cuda-check.json")))
        return "\n".join(rows)


def fmt(x, digits=None):
    if x is None:
        return "-"
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if digits is not None:
        return "%.*f" % (digits, x)
    return "%.2e" % x


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="'GPU' runs use --backend cpu (no GPU needed)")
    p.add_argument("--skip-2b", action="store_true", help="parity only, no full-size 2B benchmark")
    p.add_argument("--out", default=os.environ.get("OUT") or "cuda-check-out", help="report folder [default: $OUT]")
    p.add_argument("--work", default="/tmp/sail-cuda-check", help="scratch folder (the 2B needs ~9 GB)")
    p.add_argument("--pack", default=".cuda-pack", help="folder made by scripts/check-cuda.sh --pack (bin.tar.xz)")
    p.add_argument("--golden", default="tests/golden")
    p.add_argument("--assets", default="assets/SAIL-VL2-2B")
    p.add_argument("--tiles", default="4", help="synthetic tiles for the 2B vision timing")
    p.add_argument("--budget-s", type=float, default=480, help="start no 2B conversion after this many seconds (0: no limit)")
    p.add_argument("--keep-work", action="store_true", help="leave the scratch folder in place")
    a = p.parse_args()
    a.assets = os.path.abspath(a.assets)
    a.golden = os.path.abspath(a.golden)
    c = Check(a)
    c.log("sail CUDA check%s; pack %s, work %s, out %s" % (" (dry run)" if a.dry_run else "", os.path.abspath(a.pack), c.work, c.out))
    try:
        if c.setup():
            for name in CASES:
                c.parity_case(name)
            if not a.skip_2b:
                c.bench_2b()
    except Exception as e:  # noqa: BLE001  (whatever breaks, the report and table still come out)
        c.fail("check aborted: %r" % (e,))
    finally:
        parity_ok = bool(c.report["parity"]) and all(r.get("ok") for r in c.report["parity"].values())
        c.report["parity_ok"] = parity_ok
        c.report["ok"] = parity_ok and not c.report["failures"]
        c.save()
        t = c.table()
        c.log(t)
        if not a.keep_work:
            shutil.rmtree(c.work, ignore_errors=True)
    sys.exit(0 if c.report["ok"] else 1)


if __name__ == "__main__":
    main()
