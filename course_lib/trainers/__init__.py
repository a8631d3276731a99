"""The provided training loops (one readable file per algorithm) that call the student's exercises.

sft, reward_model, ppo, grpo, dpo and rlvr share one API (``XConfig.from_profile`` -> ``train`` ->
``Run`` -> ``save_checkpoint``; ``train_with_trl`` for every trainer TRL has), described once in
:mod:`course_lib.trainers._loop`."""
