"""Motion stages (SPEC §3, stages 6-8): keyframes, apex spotting, magnification, optical flow."""
