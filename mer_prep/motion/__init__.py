"""Motion stages (pipeline stages 6-8): keyframes, apex spotting, magnification, optical flow."""
