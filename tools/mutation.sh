#!/usr/bin/env bash
# Mutation testing of the core modules with mutmut (make mutation; not in CI: it is slow).
#   tools/mutation.sh                  every module in MODULES below, in that order
#   tools/mutation.sh nms metrics      only the modules whose path contains one of these words
# Each module is mutated in a private copy of the work tree (.mutation/work: the tree itself is
# never changed) and every mutant runs only that module's fast tests (no DDS). ../shared is linked beside
# the copy where the checkout has it, so that tests reading it (the bag tests' EuRoC frames) run, not skip.
# Per module, .mutation/report/<module>.txt gets the surviving mutants' diffs and <module>.log
# mutmut's output; .mutation/report/summary.md gets one table row per module (counts from
# mutmut's record of each mutant).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
[ -f activate ] || { echo "mutation: run 'make setup' first (make mutation does)"; exit 1; }
set +u  # the colcon setup scripts read unset variables
# shellcheck disable=SC1091
. ./activate
set -u
python -c "import mutmut" 2>/dev/null || python -m pip install -q --disable-pip-version-check -r requirements-dev.txt

# module | its fast tests (every mutant runs these, stopping at the first failure)
MODULES=(
  "r2d2_ros/evaluation/metrics.py|test/evaluation/test_metrics.py test/evaluation/test_protocol.py"
  "r2d2_ros/extraction/nms.py|test/extraction/test_detections.py test/extraction/test_pyramid_and_input.py"
  "r2d2_ros/evaluation/protocol.py|test/evaluation/test_protocol.py"
  "r2d2_ros/conversions/image_codec.py|test/conversions/test_image_codec.py"
  "r2d2_ros/conversions/keypoints_message.py|test/serving/test_messages_and_params.py"
  "r2d2_ros/serving/params.py|test/serving/test_messages_and_params.py"
  "r2d2_ros/training/losses.py|test/training/test_losses.py"
  "r2d2_ros/model/checkpoint.py|test/model/test_checkpoint.py"
  "r2d2_ros/extraction/config.py|test/extraction/test_pyramid_and_input.py test/extraction/test_detections.py"
  "r2d2_ros/extraction/multiscale.py|test/extraction/test_batch.py test/extraction/test_detections.py test/extraction/test_pyramid_and_input.py test/extraction/test_small_images.py test/extraction/test_subpixel.py"
  "r2d2_ros/extraction/subpixel.py|test/extraction/test_subpixel.py"
  "r2d2_ros/serving/camera_info.py|test/serving/test_camera_info.py"
  "r2d2_ros/serving/camera_sync.py|test/serving/test_camera_sync.py"
  "r2d2_ros/serving/topic_status.py|test/serving/test_topic_status.py"
  "r2d2_ros/serving/health.py|test/serving/test_health.py"
  "r2d2_ros/serving/stats.py|test/serving/test_stats.py test/serving/test_health.py test/serving/test_messages_and_params.py"
  "r2d2_ros/serving/worker.py|test/serving/test_worker.py"
  "r2d2_ros/serving/reloader.py|test/serving/test_reloader.py"
  "r2d2_ros/serving/frame_set.py|test/serving/test_frame_set.py"
  "r2d2_ros/tracking/front_end.py|test/tracking/test_front_end.py"
  "r2d2_ros/tracking/tracks.py|test/tracking/test_track_book.py test/tracking/test_front_end.py test/tracking/test_tracking.py test/evaluation/test_tracks.py"
  "r2d2_ros/tracking/verification.py|test/tracking/test_verification.py test/tracking/test_tracking.py test/evaluation/test_tracks.py"
  "r2d2_ros/tracking/rectification.py|test/tracking/test_rectification.py test/tracking/test_tracking.py test/tracking/test_front_end.py test/tracking/test_stereo.py"
  "r2d2_ros/sequences.py|test/bags/test_sequences.py test/sequences/test_stereo_and_resized.py test/evaluation/test_tracks.py"
  "r2d2_ros/export.py|test/backends/test_export_graph.py test/backends/test_onnx_export_and_runtime.py::test_every_architecture_exports_with_dynamic_sizes test/backends/test_onnx_export_and_runtime.py::test_bundled_model_exports_in_fp16_with_fp32_heads test/backends/test_onnx_export_and_runtime.py::test_bad_checkpoint_is_a_usage_error test/backends/test_tensorrt_engine_cache.py"
  "r2d2_ros/extraction/captured.py|test/extraction/test_captured.py"
  "r2d2_ros/tracking/optical_flow.py|test/tracking/test_flow_tracker.py"
  "r2d2_ros/tracking/reidentification.py|test/tracking/test_flow_tracker.py"
  "r2d2_ros/tracking/flow_tracker.py|test/tracking/test_flow_tracker.py test/tracking/test_front_end.py"
  "r2d2_ros/tracking/tracker.py|test/tracking/test_tracking.py test/tracking/test_front_end.py test/tracking/test_stereo.py test/tracking/test_track_book.py"
  "r2d2_ros/tracking/stereo.py|test/tracking/test_stereo.py test/serving/test_frame_set.py"
  "r2d2_ros/evaluation/stereo_tracks.py|test/evaluation/test_stereo_tracks.py test/evaluation/test_r2d2_eval.py::test_stereo_trajectories_of_every_front_end"
  "r2d2_ros/evaluation/trajectory.py|test/evaluation/test_stereo_vo.py"
  "r2d2_ros/evaluation/stereo_vo.py|test/evaluation/test_stereo_vo.py"
  "r2d2_ros/matching.py|test/tracking/test_tracking.py test/tracking/test_front_end.py"
  "r2d2_ros/features.py|test/tracking/test_tracking.py test/tracking/test_flow_tracker.py test/serving/test_messages_and_params.py test/serving/test_frame_set.py test/features/test_features_file.py"
  "r2d2_ros/geometry.py|test/geometry/test_homographies.py test/evaluation/test_metrics.py test/evaluation/test_protocol.py"
  "r2d2_ros/evaluation/tracking.py|test/evaluation/test_tracks.py test/evaluation/test_stereo_tracks.py"
  "r2d2_ros/evaluation/vo.py|test/evaluation/test_vo_score.py test/evaluation/test_metrics.py test/bags/test_eval_vo_bag.py"
  "r2d2_ros/bags/store.py|test/bags/test_store.py test/bags/test_bags.py test/bags/test_extract_bag.py"
  "r2d2_ros/bags/features.py|test/bags/test_bags.py test/bags/test_extract_bag.py"
  "r2d2_ros/bags/images.py|test/bags/test_images_bag.py test/bags/test_bags.py test/bags/test_extract_bag.py"
  "r2d2_ros/backends.py|test/backends/test_onnxruntime_sessions.py test/backends/test_backend_choice.py test/serving/test_backend_params.py test/backends/test_tensorrt_engine_cache.py"
  "r2d2_ros/serving/inference.py|test/serving/test_inference.py test/serving/test_reloader.py test/serving/test_backend_params.py"
  "r2d2_ros/extraction/runner.py|test/extraction/test_runner_and_timing.py test/extraction/test_batch.py test/backends/test_backend_choice.py"
  "r2d2_ros/extraction/timing.py|test/extraction/test_runner_and_timing.py test/extraction/test_captured.py"
  "r2d2_ros/model/nets.py|test/model/test_nets.py test/model/test_checkpoint.py test/model/test_reference_parity.py"
  "r2d2_ros/image_io.py|test/io/test_read_rgb.py test/training/test_pack_images.py test/bags/test_bags.py"
  "r2d2_ros/utils.py|test/extraction/test_subpixel.py test/training/test_losses.py"
  "r2d2_ros/viz.py|test/viz/test_viz.py test/serving/test_frame_set.py"
  "r2d2_ros/device.py|test/device/test_resolve_device.py test/training/test_schedule.py test/extraction/test_candidates_and_precision.py"
  "r2d2_ros/evaluation/cache.py|test/evaluation/test_feature_cache.py test/evaluation/test_protocol.py test/evaluation/test_tracks.py"
  "r2d2_ros/evaluation/report.py|test/evaluation/test_report.py test/evaluation/test_tracks.py test/evaluation/test_stereo_vo.py"
  "r2d2_ros/evaluation/hpatches.py|test/evaluation/test_hpatches.py test/evaluation/test_protocol.py"
  "r2d2_ros/evaluation/methods.py|test/evaluation/test_methods.py test/evaluation/test_r2d2_eval.py"
  "r2d2_ros/evaluation/precision_check.py|test/evaluation/test_precision_check.py"
  "r2d2_ros/training/config.py|test/training/test_config.py test/training/test_schedule.py test/training/test_trainer.py::test_unknown_config_keys_are_rejected"
  "r2d2_ros/training/schedule.py|test/training/test_schedule.py"
  "r2d2_ros/training/curves.py|test/training/test_curves.py test/training/test_schedule.py"
  "r2d2_ros/training/pack_images.py|test/training/test_pack_images.py"
  "r2d2_ros/training/data.py|test/training/test_augmentations.py test/training/test_synthetic_pairs.py test/training/test_flow_pairs.py test/training/test_pack_images.py test/training/test_trainer.py::test_a_pair_that_fails_its_checks_is_redrawn_never_used test/training/test_trainer.py::test_unreadable_images_are_skipped_and_counted test/training/test_trainer.py::test_synthetic_flow_agrees_with_the_images test/training/test_trainer.py::test_greyscale_share_of_pairs test/training/test_trainer.py::test_flow_pairs_in_both_file_formats"
  "r2d2_ros/training/validation.py|test/training/test_validation.py test/training/test_trainer.py::test_validate_compares_checkpoints_on_the_same_pairs"
  "r2d2_ros/training/trainer.py|test/training/test_trainer_parts.py test/training/test_trainer_synthetic.py test/training/test_schedule.py"
  "r2d2_ros/training/distributed.py|test/training/test_ranks.py test/training/test_distributed.py"
  # The package's lazy exports and the bundled model's path. The other __init__.py files hold only a docstring,
  # imports and __all__, of which mutmut makes no mutant; test/package/test_exports.py checks their names.
  "r2d2_ros/__init__.py|test/package/test_exports.py test/package/test_ros_free.py"
  "r2d2_ros/weights/__init__.py|test/package/test_exports.py"
)

# Seconds one mutant's tests may take before they count as hanging (MUTATION_TIMEOUT_S=... to change).
limit=${MUTATION_TIMEOUT_S:-90}
# MUTATION_WORK=... lets two runs (different modules) share the machine, each in its own copy.
work=${MUTATION_WORK:-$repo/.mutation/work}
report=$repo/.mutation/report
mkdir -p "$report"
summary=$report/summary.md
[ -f "$summary" ] || printf '| module | mutants | killed | survived | timeouts | suspicious | skipped |\n|---|---|---|---|---|---|---|\n' > "$summary"

# A module's report name: its file's stem, or, where two modules share a stem (features.py and
# bags/features.py), its dotted path under r2d2_ros (bags.features); tools/mutation_recheck.py agrees.
report_name() {
  local stem entry count=0
  stem=$(basename "$1" .py)
  for entry in "${MODULES[@]}"; do [ "$(basename "${entry%%|*}" .py)" = "$stem" ] && count=$((count + 1)); done
  if [ "$count" -gt 1 ]; then
    local dotted=${1#r2d2_ros/}
    dotted=${dotted%.py}
    echo "${dotted//\//.}"
  else
    echo "$stem"
  fi
}

selected() {
  [ $# -le 1 ] && return 0
  local word
  for word in "${@:2}"; do [[ $1 == *"$word"* ]] && return 0; done
  return 1
}

for entry in "${MODULES[@]}"; do
  module=${entry%%|*}
  tests=${entry#*|}
  selected "$module" "$@" || continue
  name=$(report_name "$module")
  echo "mutation: $module (tests: $tests)"
  # A fresh copy of the tracked and new (not ignored) files for every module.
  rm -rf "$work" && mkdir -p "$work"
  if [ -d "$repo/../shared" ] && [ ! -e "$(dirname "$work")/shared" ]; then
    ln -s "$(cd "$repo/../shared" && pwd)" "$(dirname "$work")/shared"
  fi
  git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$work"
  (
    cd "$work"
    export PYTHONPATH=$work${PYTHONPATH:+:$PYTHONPATH}
    # mutmut 2 counts only exit status 1 as a kill: a mutant that breaks the import (pytest's
    # status 2) would pass for a survivor, hence "|| exit 1". mutmut's own exit status is non-zero
    # whenever mutants survive; the report says how many.
    # A mutant that hangs: mutmut's timer kills only the bash it started and then waits for the
    # terminal to close, which the orphaned pytest keeps open (up to pytest.ini's 900 s per test);
    # "timeout" ends pytest itself after $limit s. The mutant then counts as a timeout (mutmut's timer
    # fired first) or as suspicious (killed, but slower than --test-time-base).
    mutmut run --paths-to-mutate "$module" --tests-dir test --simple-output --no-progress \
      --test-time-base 20 \
      --runner "bash -c 'timeout -k 5 $limit python -m pytest -x -q -p no:cacheprovider $tests || exit 1'" \
      >"$report/$name.log" 2>&1 || true
    {
      echo "# $module  (tests: $tests)"
      mutmut show all 2>&1 || true
    } >"$report/$name.txt"
  )
  # The counts, from mutmut's own record of each mutant's status.
  counts=$(python - "$work/.mutmut-cache" <<'COUNT'
import collections, sqlite3, sys
status = collections.Counter(s for (s,) in sqlite3.connect(sys.argv[1]).execute("select status from Mutant"))
print(sum(status.values()), *(status[s] for s in ("ok_killed", "bad_survived", "bad_timeout", "ok_suspicious")),
      status["skipped"] + status["untested"])
COUNT
  ) || { echo "mutation: $module: no results (see $report/$name.log)"; tail -n 20 "$report/$name.log"; continue; }
  read -r total killed survived timeout suspicious skipped <<<"$counts"
  row="| $module | $total | $killed | $survived | $timeout | $suspicious | $skipped |"
  grep -v "^| $module |" "$summary" >"$summary.new" || true
  echo "$row" >>"$summary.new" && mv "$summary.new" "$summary"
  echo "mutation: $row"
done
rm -rf "$work"
echo "mutation: summary in .mutation/report/summary.md, survivors' diffs in .mutation/report/<module>.txt"
cat "$summary"
