#!/usr/bin/env bash
# Every GPU figure that docs/benchmarks.md still lacks, in one run: about 10 minutes on one H200, most important
# first, each step under a time limit so that one failure costs only its own minutes.
#
# Usage: bash tools/analysis_tools/gpu_benchmarks.sh OUT_DIR
#   Results: OUT_DIR/<step>.json and .log per step, and OUT_DIR/summary.txt (printed at the end).
#   On the offline GPU machine, install the wheels first (../shared/device/README.md) and export PYTHONPATH.
# Env: SMOKE=1 runs every step with the demo configs, tiny batches and one step on the CPU (checks the script);
#      LIMIT=seconds per step (default 150); PYTHON (default python3); WORKERS (default: the CPU count).
set -uo pipefail
OUT=${1:?usage: gpu_benchmarks.sh OUT_DIR}
mkdir -p "$OUT"
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
LIMIT=${LIMIT:-150}
WORKERS=${WORKERS:-$(nproc)}

if [ "${SMOKE:-0}" = 1 ]; then
    MAE=configs/demo/mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py
    SIMMIM=configs/demo/a2mim_resnet-test-l3_1xb64-coslr-10e_builtin-64px.py
    FT=configs/demo/vit-test-p4_ft-1xb128-coslr-10e_builtin-32px.py
    VITL=$FT
    MIXMIM=configs/demo/mixmim_mixmim-test_1xb64-coslr-10e_builtin-64px.py
    BIG=4 MID=4 STEPS=1 WARMUP=1 NUM_IMG=64 IMG_SIZE=64 SCALE=32 WORKERS=2 DEV=(--device cpu) AMP=none
else
    MAE=configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py
    SIMMIM=configs/simmim/simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py
    FT=configs/mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py
    VITL=configs/a2mim/benchmarks/vit-large-p16_8xb64-accu2-amp-coslr-100e_in1k.py
    MIXMIM=configs/mixmim/mixmim_mixmim-base_16xb128-amp-coslr-600e_in1k.py
    BIG=512 MID=128 STEPS=10 WARMUP=3 NUM_IMG=16384 IMG_SIZE=448 SCALE=224 DEV=() AMP=bf16
fi

step() {  # step NAME TOOL ARGS...: run one benchmark under the time limit
    local name=$1 tool=$2
    shift 2
    echo "== $name"
    timeout "$LIMIT" "$PY" "tools/analysis_tools/$tool" "$@" --json "$OUT/$name.json" >"$OUT/$name.log" 2>&1
    echo "   exit $? ($(date +%T)); log: $OUT/$name.log"
}

"$PY" - <<'PY' >"$OUT/env.txt" 2>&1
import torch
print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')
PY
"$PY" tools/misc/collect_env.py >"$OUT/collect_env.txt" 2>&1  # the whole environment, for docs/benchmarks.md
# the JPEG region decoder of the CPU path (optional: needs a C compiler and the libjpeg headers)
"$PY" setup.py -q build_ext --inplace >"$OUT/build_ext.log" 2>&1 || echo "mimlab._jpeg not built: see $OUT/build_ext.log"

# 1. MAE ViT-B/16 pretraining step, bf16, batch 512, against mmpretrain 1.2.0 (speed and peak memory side by side)
step mae_vitb_bf16_vs_mmpretrain benchmark.py "$MAE" --batch-size "$BIG" --amp "$AMP" --steps "$STEPS" \
    --warmup "$WARMUP" --reference mmpretrain "${DEV[@]}"

# 2. end to end from JPEG files: the GPU input path (nvJPEG) and the CPU path, WORKERS loader workers
TREE=$OUT/jpeg_tree
"$PY" -c "from mimlab.datasets.builtin import write_builtin_dataset as w; w('$TREE', num_train=$NUM_IMG, num_val=0, img_size=$IMG_SIZE, fmt='jpg')" \
    >"$OUT/jpeg_tree.log" 2>&1
cat >"$OUT/gpu_path.py" <<CFG
_base_ = '$PWD/$MAE'
model = dict(data_preprocessor=dict(type='GPUDecodeDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]))
train_dataloader = dict(num_workers=$WORKERS, persistent_workers=True, collate_fn=dict(type='pseudo_collate'),
    dataset=dict(_delete_=True, type='ImageNet', data_root='$TREE', split='train',
        pipeline=[dict(type='PackEncodedWithCrop', scale=$SCALE, crop_ratio_range=(0.2, 1.0), flip_prob=0.5)]))
CFG
cat >"$OUT/cpu_path.py" <<CFG
_base_ = '$PWD/$MAE'
train_dataloader = dict(num_workers=$WORKERS, persistent_workers=True,
    dataset=dict(_delete_=True, type='ImageNet', data_root='$TREE', split='train',
        pipeline=[dict(type='LoadImageRandomResizedCrop', scale=$SCALE, crop_ratio_range=(0.2, 1.0),
                       interpolation='bicubic', flip_prob=0.5), dict(type='PackInputs')]))
CFG
step e2e_gpu_input_path benchmark.py "$OUT/gpu_path.py" --batch-size "$BIG" --amp "$AMP" --data files \
    --steps "$((STEPS * 2))" --warmup "$WARMUP" "${DEV[@]}"
step e2e_cpu_input_path benchmark.py "$OUT/cpu_path.py" --batch-size "$BIG" --amp "$AMP" --data files \
    --steps "$((STEPS * 2))" --warmup "$WARMUP" "${DEV[@]}"

# 3. SimMIM Swin-B/192 and ViT-B fine-tuning, with MFU
step simmim_swinb192_bf16 benchmark.py "$SIMMIM" --batch-size "$MID" --amp "$AMP" --steps "$STEPS" --warmup "$WARMUP" "${DEV[@]}"
step vitb_finetune_bf16 benchmark.py "$FT" --batch-size "$MID" --amp "$AMP" --steps "$STEPS" --warmup "$WARMUP" "${DEV[@]}"

# 4. MAE compiled; MixMIM-B against mmpretrain
step mae_vitb_bf16_compiled benchmark.py "$MAE" --batch-size "$BIG" --amp "$AMP" --compile --steps "$STEPS" \
    --warmup "$WARMUP" "${DEV[@]}"
step mixmim_b_bf16_vs_mmpretrain benchmark.py "$MIXMIM" --batch-size "$MID" --amp "$AMP" --steps "$STEPS" \
    --warmup "$WARMUP" --reference mmpretrain "${DEV[@]}"

# 5. the CPU input pipeline alone on this machine's cores, against mmpretrain's
step cpu_pipeline_per_core benchmark_data.py "$OUT/cpu_path.py" --files "$TREE" --num 2048 --workers "$WORKERS" --repeats 2 \
    --reference mmpretrain

# 6. weight EMA under FSDP2 (one rank): building the local view of ViT-L vs handing out the cached one, per iteration
step ema_view_vitl benchmark_ema_view.py "$VITL" --repeats 30

"$PY" - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print((out / 'env.txt').read_text().strip())
print(f"{'step':32s} {'img/s':>9s} {'MFU %':>6s} {'peak MiB':>9s} {'ref img/s':>9s} {'ref MiB':>8s} {'ratio':>6s} {'wait':>5s}")
for f in sorted(out.glob('*.json')):
    r = json.loads(f.read_text())
    if 'build_ms' in r:  # benchmark_ema_view
        print(f"{f.stem:32s} view build {r['build_ms']:.2f} ms, cached {r['cached_ms']:.2f} ms, EMA update {r['update_ms']:.2f} ms")
        continue
    if 'images_per_s' not in r:  # benchmark_data: per pipeline
        row = {k: v['images_per_s_per_core'] for k, v in r.items() if isinstance(v, dict)}
        print(f"{f.stem:32s} per core: " + ', '.join(f'{k} {v:.0f}' for k, v in row.items()) + f", ratio {r.get('speed_ratio', 0):.2f}")
        continue
    g = lambda k, fmt: format(r[k], fmt) if k in r else '-'
    mfu = format(100 * r['mfu'], '.1f') if 'mfu' in r else '-'
    print(f"{f.stem:32s} {g('images_per_s', '9.0f')} {mfu:>6s} {g('peak_memory_mb', '9.0f')} {g('reference_images_per_s', '9.0f'):>9s} "
          f"{g('reference_peak_memory_mb', '8.0f'):>8s} {g('speed_ratio', '6.2f'):>6s} {g('data_wait_fraction', '5.2f')}")
PY
