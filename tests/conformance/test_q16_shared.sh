#!/usr/bin/env bash
# The Q16 prompt-vector loader (src/judge/q16.c) on the real ViT-L/14 vectors in
# ../shared/data/q16/prompts_vit_l14.f32: shape [2, 768], finite values, the row norms and
# cosine stated in that folder's README, each row classified as its own class, and a
# 512-d (ViT-B) embedding refused.
source "$(dirname "$0")/lib.sh"
need_shared data/q16/prompts_vit_l14.f32
"$BUILD/tests/clip_vision_check" q16-file "$SHARED/data/q16/prompts_vit_l14.f32"
