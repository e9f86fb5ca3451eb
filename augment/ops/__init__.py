"""Tools for the people who run the pipeline, apart from the data path: the run report (`report/`), capacity
planning from measured throughput (`capacity`), the benchmark result format (`benchjson`) and their `moon`
subcommands (`commands`). The runner never imports these; `moon run` only renders the report after the shards
are committed.
"""
