#!/usr/bin/env bash
# The full defense comparison (issue 18 §2, docs/defenses.md): Madry and the five defenses attacked on every
# GTSRB validation image (860 in the demo) instead of attack_classifier.num_images, as one DVC experiment. Their
# train_classifier stages rerun but train nothing (attack_images is left out of the training fingerprint, so each
# finds its finished run): about 1½ min of attacks per row, ≈ 10 min on a 2-core CPU (estimated from the attack
# stage times; the 16 min measured before included retraining). Compare with
#   dvc exp show --only-changed      and      dvc exp diff HEAD defenses-all-images
set -euo pipefail
images=${1:-860}
overrides=()
for name in gtsrb_madry_none gtsrb_madry_aad_none gtsrb_alp_none gtsrb_alp_aad_none \
            gtsrb_at_alp_none gtsrb_trades_none; do
  overrides+=(-S "classifiers.$name.attack_images=$images")
done
dvc exp run -n "defenses-all-images" "${overrides[@]}"   # in the workspace (a --temp run lacks the
# uncached resume states and shared warm-ups, so it would retrain every classifier from scratch)
