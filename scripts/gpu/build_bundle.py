"""Build the offline bundle for the full-data GPU run (``make bundle``): at most 64 MiB.

    python scripts/gpu/build_bundle.py [--data-dir ../shared/data] [--out bundle] [--tar dist/nerqa-gpu-bundle.tar.gz]

What goes in, and why:

    encoder/   the default encoder (MiniLM-L6-H384 uncased) saved in fp16 with its tokenizer, about
               45 MB; ``MultiTaskModel.from_encoder`` loads it back in fp32 (``dtype=torch.float32``).
    data/      CoNLL-2003 train/validation/test and the SQuAD dev split (train / held-out), about 9 MB.
    wheels/    what a CUDA image with torch, transformers, accelerate, pandas, pyarrow and xxhash
               lacks: datasets, dill, multiprocess (one wheel per Python 3.10-3.13), evaluate,
               seqeval (built here: it is published as a source archive) and this project.
    run_full.sh, bench.py, MANIFEST.json (every file with its size and sha256), README.txt.

The data files are checked against the sha256 sums in the data folder's README. The bundle holds
data that must not be committed: ``bundle/`` and ``dist/`` are ignored by git.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIMIT_BYTES = 64 * 2**20
DATA_FILES = ["conll2003/train.txt", "conll2003/validation.txt", "conll2003/test.txt",
              "squad/dev-v1.1-split-train.json", "squad/dev-v1.1-split-heldout.json"]
DOWNLOADED = ["datasets==5.2.0", "dill==0.4.1", "evaluate==0.4.6"]
PER_PYTHON = {"multiprocess==0.70.19": ["3.10", "3.11", "3.12", "3.13"]}
BUILT = ["seqeval==1.2.2"]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pip(*args: str) -> None:
    """``python -m pip`` with this interpreter; raises on failure."""
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


# -- pieces ----------------------------------------------------------------------------------------
def save_fp16_encoder(target: Path) -> dict:
    """The default encoder in fp16 + its tokenizer; returns the largest fp32 round-trip difference."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from nerqa_helpers.encoders import resolve_encoder

    path, _ = resolve_encoder("default")
    encoder = AutoModel.from_pretrained(path, add_pooling_layer=False, dtype=torch.float32, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    encoder.half().save_pretrained(target)
    tokenizer.save_pretrained(target)
    back = AutoModel.from_pretrained(target, dtype=torch.float32, local_files_only=True)
    encoder = AutoModel.from_pretrained(path, add_pooling_layer=False, dtype=torch.float32, local_files_only=True)
    assert next(back.parameters()).dtype == torch.float32
    inputs = tokenizer(["The bundle keeps the encoder in half precision."], return_tensors="pt")
    with torch.no_grad():
        difference = (back(**inputs).last_hidden_state - encoder(**inputs).last_hidden_state).abs().max().item()
    return {"dtype_on_disk": "float16", "loads_as": "float32", "max_abs_hidden_difference": difference}


def expected_sums(data_dir: Path) -> dict[str, str]:
    """file name → sha256 from the data folder's README tables (empty when there is none)."""
    readme = data_dir / "README.md"
    if not readme.is_file():
        return {}
    return {name: digest for name, digest in re.findall(r"`([\w./-]+)`[^\n]*?`([0-9a-f]{64})`", readme.read_text())}


def copy_data(data_dir: Path, target: Path) -> None:
    """Copy ``DATA_FILES``; a file whose sha256 differs from the README's stops the build."""
    sums = expected_sums(data_dir)
    for name in DATA_FILES:
        source = data_dir / name
        if not source.is_file():
            raise SystemExit(f"missing data file {source} (set --data-dir or NERQA_DATA_DIR)")
        expected = sums.get(name, sums.get(Path(name).name))
        if expected and sha256(source) != expected:
            raise SystemExit(f"{source}: sha256 differs from {data_dir / 'README.md'}")
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target / name)


def fetch_wheels(target: Path) -> None:
    """Download the pure-Python wheels (no dependencies) and build seqeval and this project."""
    target.mkdir(parents=True, exist_ok=True)
    pip("download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(target), *DOWNLOADED)
    for requirement, versions in PER_PYTHON.items():
        for version in versions:
            pip("download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", version,
                "--implementation", "cp", "-d", str(target), requirement)
    pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(target), *BUILT)
    pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(target), str(REPO))


def manifest(bundle: Path, extra: dict) -> dict:
    files = sorted(path for path in bundle.rglob("*") if path.is_file() and path.name != "MANIFEST.json")
    entries = [{"path": str(path.relative_to(bundle)), "bytes": path.stat().st_size, "sha256": sha256(path)}
               for path in files]
    return {"built": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "total_bytes": sum(e["bytes"] for e in entries),
            **extra, "files": entries}


README = """Offline bundle for the full-data GPU run of the NER + QA workbook.

    bash run_full.sh --out results            # full preset: multi-task, NER alone, QA alone, benchmark
    bash run_full.sh --tiny --out results     # a few steps on a small slice of the same files

run_full.sh installs wheels/ into a private folder with pip --no-index (nothing is fetched), then
trains with encoder/ on data/ and writes JSON into --out. The data files are for running and
measuring only; do not publish or commit them. MANIFEST.json lists every file with its sha256.
"""


def build(data_dir: Path, out: Path, tar_path: Path | None) -> dict:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    encoder = save_fp16_encoder(out / "encoder")
    copy_data(data_dir, out / "data")
    fetch_wheels(out / "wheels")
    shutil.copyfile(REPO / "scripts" / "gpu" / "run_full.sh", out / "run_full.sh")
    os.chmod(out / "run_full.sh", 0o755)
    shutil.copyfile(REPO / "benchmarks" / "bench.py", out / "bench.py")
    (out / "README.txt").write_text(README)
    info = manifest(out, {"encoder": encoder})
    (out / "MANIFEST.json").write_text(json.dumps(info, indent=1) + "\n")
    sizes = {"directory_bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file())}
    if tar_path is not None:
        tar_path.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tar_path, "w:gz") as archive:
            archive.add(out, arcname=out.name)
        sizes["tarball_bytes"] = tar_path.stat().st_size
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = os.environ.get("NERQA_DATA_DIR") or str(REPO.parent / "shared" / "data")
    parser.add_argument("--data-dir", default=default_data)
    parser.add_argument("--out", default=str(REPO / "bundle"))
    parser.add_argument("--tar", default=None, help="also write a .tar.gz of the bundle here")
    args = parser.parse_args(argv)
    sizes = build(Path(args.data_dir), Path(args.out), Path(args.tar) if args.tar else None)
    for name, value in sizes.items():
        print(f"{name.replace('_bytes', '')}: {value / 2**20:.1f} MiB")
    too_big = {name: value for name, value in sizes.items() if value > LIMIT_BYTES}
    if too_big:
        print(f"error: over the 64 MiB limit: {too_big}", file=sys.stderr)
        return 1
    print(f"bundle ready in {args.out} (limit 64 MiB)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
