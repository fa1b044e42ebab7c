#!/usr/bin/env bash
# The full-data GPU run, offline, from the bundle that `make bundle` builds.
#
#   bash bundle/run_full.sh --out reports/gpu-full              # from inside the bundle
#   scripts/gpu/run_full.sh --bundle bundle --out reports/gpu-full
#   scripts/gpu/run_full.sh --tiny --out runs/gpu-tiny          # check on a CPU: a few steps on a slice
#
# 1. Installs the bundled wheels (datasets, dill, multiprocess, evaluate, seqeval, this project)
#    into a private folder with `pip --no-index --no-deps`: nothing is fetched.
# 2. Trains the `full` preset three times with the bundled fp16 encoder (loaded in fp32):
#    multi-task (ner,qa), NER alone, QA alone. Each run scores CoNLL validation, CoNLL test (NER
#    runs) and the SQuAD held-out split (QA runs).
# 3. Runs benchmarks/bench.py --preset gpu (skip with --no-bench).
# 4. Writes into --out: results.json (GPU name, versions, training seconds, real tokens/s, scores,
#    the issue's targets met or missed), multitask.json / ner.json / qa.json (each run's metrics),
#    benchmark-*.json and run.log. Commit that folder under reports/.
#
# Options: --bundle DIR, --out DIR, --tiny, --no-bench, --python PY (default: $PYTHON or python3),
# --work DIR (scratch: installed wheels, saved models; default: a new temporary folder).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -d "$HERE/wheels" && -d "$HERE/encoder" ]]; then BUNDLE="$HERE"; else BUNDLE="$(cd "$HERE/../.." && pwd)/bundle"; fi
OUT="results"
TINY=0
BENCH=1
PY="${PYTHON:-python3}"
WORK=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bundle) BUNDLE="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --tiny) TINY=1; shift ;;
    --no-bench) BENCH=0; shift ;;
    --python) PY="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "run_full.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

for part in encoder/config.json wheels data/conll2003/train.txt data/squad/dev-v1.1-split-train.json; do
  if [[ ! -e "$BUNDLE/$part" ]]; then
    echo "run_full.sh: $BUNDLE/$part is missing; build the bundle with 'make bundle' or pass --bundle DIR" >&2
    exit 2
  fi
done
BUNDLE="$(cd "$BUNDLE" && pwd)"
[[ "$PY" == */* && "$PY" != /* ]] && PY="$(pwd)/$PY"  # a relative interpreter path must survive the cd below
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/nerqa-gpu.XXXXXX")}"
mkdir -p "$WORK/runs"
exec > >(tee -a "$OUT/run.log") 2>&1
echo "bundle $BUNDLE; output $OUT; scratch $WORK; tiny=$TINY; $(date -u '+%Y-%m-%d %H:%M:%S UTC')"

export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false TQDM_DISABLE=1 PYTHONUNBUFFERED=1
export HF_HOME="$WORK/hf-home"
cd "$WORK"  # so that Python imports the installed wheels, not a checkout in the current folder

# -- 1. install, offline ---------------------------------------------------------------------------
SITE="$WORK/site"
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
  --find-links "$BUNDLE/wheels" datasets dill multiprocess evaluate seqeval nerqa-helpers
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - <<'EOF'
import importlib, sys
missing = []
for name in ("torch", "transformers", "accelerate", "pandas", "pyarrow", "xxhash", "datasets", "seqeval", "nerqa_helpers"):
    try:
        module = importlib.import_module(name)
        print(f"  {name:<14} {getattr(module, '__version__', '')}  {module.__file__}")
    except Exception as error:  # say which import fails, then stop
        missing.append(f"{name}: {type(error).__name__}: {error}")
if missing:
    sys.exit("run_full.sh: these imports fail (the image lacks them or has an incompatible version):\n  " + "\n  ".join(missing))
import torch
print("  cuda:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available (CPU run)")
EOF

# -- 2. data: the bundle's files, or a small slice of them for --tiny -------------------------------
DATA="$BUNDLE/data"
PRESET_ARGS=(--preset full)
if [[ $TINY == 1 ]]; then
  DATA="$WORK/tiny-data"
  "$PY" - "$BUNDLE/data" "$DATA" <<'EOF'
"""First sentences of each CoNLL split and a few SQuAD questions: same formats, a few steps of work."""
import json, sys
from pathlib import Path
source, target = Path(sys.argv[1]), Path(sys.argv[2])
(target / "conll2003").mkdir(parents=True, exist_ok=True)
(target / "squad").mkdir(parents=True, exist_ok=True)
for split, sentences in (("train", 48), ("validation", 24), ("test", 24)):
    blocks = (source / "conll2003" / f"{split}.txt").read_text().split("\n\n")[: sentences + 1]
    (target / "conll2003" / f"{split}.txt").write_text("\n\n".join(blocks) + "\n")
for split, questions in (("train", 24), ("heldout", 8)):
    content = json.loads((source / "squad" / f"dev-v1.1-split-{split}.json").read_text())
    article = content["data"][0]
    kept, left = [], questions
    for paragraph in article["paragraphs"]:
        if left <= 0:
            break
        kept.append({**paragraph, "qas": paragraph["qas"][:left]})
        left -= len(kept[-1]["qas"])
    content["data"] = [{**article, "paragraphs": kept}]
    (target / "squad" / f"dev-v1.1-split-{split}.json").write_text(json.dumps(content))
print(f"  tiny slice of the bundle's data in {target}")
EOF
  PRESET_ARGS=(--preset small --max-steps 6 --batch-size 8)
fi

# -- 3. the three training runs ------------------------------------------------------------------
FAILED=()
run_one() {  # name, tasks
  local name="$1" tasks="$2" started
  started=$(date +%s)
  echo; echo "== $name (--tasks $tasks) =="
  if "$PY" -m nerqa_helpers train "${PRESET_ARGS[@]}" --encoder "$BUNDLE/encoder" --data-dir "$DATA" \
       --tasks "$tasks" --output-dir "$WORK/runs/$name" --quiet; then
    echo "$(( $(date +%s) - started ))" > "$WORK/runs/$name/wall_seconds"
  else
    FAILED+=("$name")
  fi
}
run_one multitask ner,qa
run_one ner ner
run_one qa qa

# -- 4. benchmark ----------------------------------------------------------------------------------
BENCH_PY="$BUNDLE/bench.py"
[[ -f "$BENCH_PY" ]] || BENCH_PY="$HERE/../../benchmarks/bench.py"
if [[ $BENCH == 1 ]]; then
  echo; echo "== benchmark =="
  BENCH_PRESET=gpu
  [[ $TINY == 1 ]] && BENCH_PRESET=tiny
  "$PY" "$BENCH_PY" --preset "$BENCH_PRESET" --data-dir "$DATA" --encoder "$BUNDLE/encoder" \
    --out "$OUT/benchmark-$BENCH_PRESET.json" || FAILED+=("benchmark")
fi

# -- 5. results.json ---------------------------------------------------------------------------------
"$PY" - "$WORK/runs" "$OUT" "$TINY" "$BUNDLE" <<'EOF'
import json, platform, sys, time
from pathlib import Path
import torch, transformers
runs, out, tiny, bundle = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1", Path(sys.argv[4])
KEYS = ("ner_f1", "ner_precision", "ner_recall", "test_ner_f1", "test_ner_precision", "test_ner_recall",
        "qa_exact_match", "qa_f1", "train_seconds", "steps", "task_mix")
result = {
    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    "device": "cuda" if torch.cuda.is_available() else f"cpu ({platform.processor() or platform.machine()})",
    "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
    "preset": "tiny check (small preset, 6 steps, slice of the data)" if tiny else "full",
    "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    "bundle_manifest_built": json.loads((bundle / "MANIFEST.json").read_text()).get("built") if (bundle / "MANIFEST.json").is_file() else None,
    "runs": {},
}
for name in ("multitask", "ner", "qa"):
    folder = runs / name
    if not (folder / "metrics.json").is_file():
        result["runs"][name] = {"failed": True}
        continue
    metrics = json.loads((folder / "metrics.json").read_text())
    (out / f"{name}.json").write_text(json.dumps(metrics, indent=1) + "\n")
    steps = [r for r in json.loads((folder / "history.json").read_text()) if r.get("kind") == "train"]
    real = sum(r["real_tokens"] for r in steps)
    padded = sum(r["tokens"] for r in steps)
    row = {key: metrics[key] for key in KEYS if key in metrics}
    row.update(real_tokens=real, padded_tokens=padded,
               real_tokens_per_s=round(real / metrics["train_seconds"], 1),
               padded_tokens_per_s=round(padded / metrics["train_seconds"], 1))
    wall = folder / "wall_seconds"
    if wall.is_file():
        row["command_wall_seconds"] = int(wall.read_text())
    result["runs"][name] = row
multi = result["runs"].get("multitask", {})
if "train_seconds" in multi:
    result["targets"] = {
        "multitask train_seconds <= 15": multi["train_seconds"] <= 15,
        "multitask real_tokens_per_s >= 1e6": multi["real_tokens_per_s"] >= 1e6,
        "multitask test_ner_f1 >= 88.0": multi.get("test_ner_f1", 0) >= 88.0,
        "multitask qa_f1 >= 70.0": multi.get("qa_f1", 0) >= 70.0,
    }
    if tiny:
        result["targets_note"] = "tiny check: the targets apply to the full preset on one H100/H200 only"
(out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
print()
print(f"{'run':<10}{'train s':>9}{'real tok/s':>12}{'NER dev F1':>11}{'NER test F1':>12}{'QA EM':>7}{'QA F1':>7}")
for name, row in result["runs"].items():
    if row.get("failed"):
        print(f"{name:<10} failed")
        continue
    cell = lambda key: f"{row[key]:.2f}" if key in row else "-"
    print(f"{name:<10}{row['train_seconds']:>9.1f}{row['real_tokens_per_s']:>12,.0f}{cell('ner_f1'):>11}"
          f"{cell('test_ner_f1'):>12}{cell('qa_exact_match'):>7}{cell('qa_f1'):>7}")
for name, ok in result.get("targets", {}).items():
    print(f"target {name}: {'met' if ok else 'MISSED'}")
print(f"GPU: {result['gpu']}; wrote {out / 'results.json'}")
EOF

if [[ ${#FAILED[@]} -gt 0 ]]; then
  echo "run_full.sh: failed: ${FAILED[*]} (see $OUT/run.log)" >&2
  exit 1
fi
echo "run_full.sh: done; commit $OUT under reports/ (the scratch folder $WORK can go)"
