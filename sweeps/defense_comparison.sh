#!/usr/bin/env bash
# The full defense comparison (issue 18 §2, docs/defenses.md): the report's defense_table rows attacked on every
# GTSRB validation image (860 in the demo) instead of attack_classifier.num_images, as one DVC experiment. Only
# their attack_classifier stages and the report rerun. Compare with
#   dvc exp show --only-changed      and      dvc exp diff HEAD defenses-all-images
set -euo pipefail
images=${1:-860}
overrides=()
for name in gtsrb_natural_none gtsrb_madry_none gtsrb_madry_aad_none gtsrb_alp_none gtsrb_alp_aad_none \
            gtsrb_at_alp_none gtsrb_trades_none; do
  overrides+=(-S "classifiers.$name.attack_images=$images")
done
dvc exp run --temp -n "defenses-all-images" "${overrides[@]}"   # --temp: the workspace is left as it is
