"""Spotting micro- and macro-expressions in long videos: training-free spotters over a video's
motion (``mer_prep.motion.video_motion``), tuned on training subjects only."""
