#!/usr/bin/env bash
# Kept for users of the original scripts: one environment now serves every stage.
# Prints the environment's path; activate it with: source "$(bash create_v_env_main.sh)/bin/activate"
exec bash "$(dirname "$0")/tools/setup_env.sh"
