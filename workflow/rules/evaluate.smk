# Reference statistics (once), then FID/sFID/IS/precision/recall, each with its sampling error,
# per sample set.


rule train_classifier:
    input:
        spec=spec_of("classifier"),
    output:
        checkpoint=C.path("classifier"),
    log:
        log_path("train_classifier", "classifier"),
    benchmark:
        benchmark_path("train_classifier", "classifier")
    conda:
        "../envs/ig.yaml"
    threads: 1
    params:
        data=dataset_args(config["evaluation"]["dataset"]),
        train=flags(config["evaluation"]["classifier"]),
    shell:
        "ig train-classifier {params.data} --out {output.checkpoint:q} {params.train} > {log:q} 2>&1"


rule reference_stats:
    input:
        spec=spec_of("reference"),
        extractor=extractor_input,
        assets=assets_input,
    output:
        reference=C.path("reference"),
    log:
        log_path("reference_stats", "reference"),
    benchmark:
        benchmark_path("reference_stats", "reference")
    conda:
        "../envs/ig.yaml"
    threads: 1
    params:
        source=(
            f"--images {q(config['evaluation']['reference'])}"
            if config["evaluation"]["reference"]
            else dataset_args(config["evaluation"]["dataset"])
        ),
        extractor=extractor_arg(),
        pr_images=config["evaluation"]["reference_images"],
    shell:
        "ig reference {params.source} --extractor {params.extractor} --pr-images {params.pr_images} "
        "--out {output.reference:q} > {log:q} 2>&1"


rule evaluate:
    input:
        spec=spec_of("evaluation"),
        samples=C.path("sample_manifest"),
        reference=C.path("reference"),
        extractor=extractor_input,
    output:
        metrics=C.path("metrics"),
        grid=report(C.path("grid"), category="Samples", subcategory="{run}", caption="../report/grid.rst"),
    log:
        log_path("evaluate", "{run}/{milestone}/{guidance}-{labels}"),
    benchmark:
        benchmark_path("evaluate", "{run}/{milestone}/{guidance}-{labels}")
    conda:
        "../envs/ig.yaml"
    threads: 1
    resources:
        runtime=planned_runtime("evaluate"),
    params:
        extractor=extractor_arg(),
        drop=drop_shards_flag(),
    shell:
        "ig evaluate {input.samples:q} --spec {input.spec:q} --reference {input.reference:q} "
        "--extractor {params.extractor} --out {output.metrics:q} --grid {output.grid:q} {params.drop} > {log:q} 2>&1"
