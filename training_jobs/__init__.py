"""Everything that runs as a Ray job: dataset import, solution versions (the recipe's training on
Ray Train, validation, evaluation, refit) and the job runner that submits and watches them.

`loop` (the one plain-torch training loop), `validation` and `evaluation` import no Ray: tests,
benchmarks and notebooks use them in a plain process.
"""
