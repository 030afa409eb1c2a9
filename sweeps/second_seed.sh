#!/usr/bin/env bash
# A second training seed for Madry and the five defenses (issue 18 §2, docs/defenses.md "A second seed"), as one DVC
# experiment: each row's own `seed` changes its initialisation, shuffling, augmentation and training attacks (the data
# splits and the evaluated images stay on the top-level seed), so the rows retrain from a new shared warm-up and are
# attacked on the same images as before. ≈ 15 min on a 2-core CPU. Compare with
#   dvc exp show --only-changed      and      python sweeps/seed_summary.py <experiment>
set -euo pipefail
seed=${1:-1}
overrides=()
for name in gtsrb_madry_none gtsrb_madry_aad_none gtsrb_alp_none gtsrb_alp_aad_none \
            gtsrb_at_alp_none gtsrb_trades_none; do
  overrides+=(-S "++classifiers.$name.seed=$seed")     # ++: add the key (params.yaml leaves it at its default)
done
dvc exp run -n "defenses-seed-$seed" "${overrides[@]}"   # in the workspace, as sweeps/defense_comparison.sh
