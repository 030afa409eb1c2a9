#!/usr/bin/env bash
# Queue the defense tuning sweep (issue 18 §2, docs/defenses.md): every run trains one GTSRB classifier without a
# held-out 20% of each class's tracks (215 images in the demo) and reports holdout_accuracy / holdout_pgd_accuracy on them. Never the
# validation (test) images. Run the queue with `dvc queue start -j 1`, then compare with
#   dvc exp show --only-changed --drop 'val_.*|train_.*' --keep 'holdout_.*'
# Recipe length: Madry at 6, 11, 16 and 21 recipe epochs after the shared 10 clean ones; the weights at 16.
# 15 experiments, 1–1½ minutes each on a 2-core CPU when run alone (never two torch processes at once on 2 cores).
set -euo pipefail
share=0.2
recipe_epochs=26          # 10 clean + 16 recipe epochs
queue() {                 # queue NAME CLASSIFIER [-S key=value ...]
  local name=$1 entry=$2; shift 2
  dvc exp run --queue -n "$name" "train_classifier@$entry" -S "classifiers.$entry.holdout_share=$share" \
    -S "classifiers.$entry.val_subset=100000" "$@"          # the PGD curve on every held-out image, not a subset
}
for epochs in 16 21 26 31; do
  queue "tune-madry-e$epochs" gtsrb_madry_none -S "classifiers.gtsrb_madry_none.epochs=$epochs"
done
for beta in 1.0 3.0 6.0; do
  queue "tune-trades-b$beta" gtsrb_trades_none -S "classifiers.gtsrb_trades_none.epochs=$recipe_epochs" \
    -S "classifiers.gtsrb_trades_none.options.beta=$beta"
done
for weight in 0.2 0.5 1.0; do
  queue "tune-alp-l$weight" gtsrb_alp_none -S "classifiers.gtsrb_alp_none.epochs=$recipe_epochs" \
    -S "classifiers.gtsrb_alp_none.options.logit_weight=$weight"
done
for weight in 10.0 100.0 1000.0; do
  queue "tune-at_alp-a$weight" gtsrb_at_alp_none -S "classifiers.gtsrb_at_alp_none.epochs=$recipe_epochs" \
    -S "classifiers.gtsrb_at_alp_none.options.attention_weight=$weight"
done
# AAD's α = β (as in seed 002), tuned on the Madry base; ALP + AAD takes the same value (docs/defenses.md: an AAD
# run costs 1.3 Madry runs, and the demo's session budget ran out; add gtsrb_alp_aad_none here to tune it apart).
for entry in gtsrb_madry_aad_none; do
  for weight in 0.01 0.1; do
    queue "tune-${entry#gtsrb_}-w$weight" "$entry" -S "classifiers.$entry.epochs=$recipe_epochs" \
      -S "classifiers.$entry.options.alpha=$weight" -S "classifiers.$entry.options.beta=$weight"
  done
done
