"""`python -m onepunch ...` (what torchrun runs: `torchrun --nproc_per_node N -m onepunch shards ...`)."""

from onepunch.cli import main

main()
