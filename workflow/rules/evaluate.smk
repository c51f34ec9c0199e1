# Reference statistics (once), then FID/sFID/IS/precision/recall per sample set.


rule train_classifier:
    output:
        checkpoint=f"{R}/classifier.pt",
    params:
        data=dataset_args(config["evaluation"]["dataset"]),
        train=flags(config["evaluation"]["classifier"]),
    log:
        f"logs/{config['name']}/train_classifier.log",
    threads: 1
    shell:
        "ig train-classifier {params.data} --out {output.checkpoint} {params.train} > {log} 2>&1"


rule reference_stats:
    input:
        extractor=extractor_input,
        assets=assets_input,
    output:
        reference=f"{R}/reference.npz",
    params:
        source=(
            f"--images {config['evaluation']['reference']}"
            if config["evaluation"]["reference"]
            else dataset_args(config["evaluation"]["dataset"])
        ),
        extractor=extractor_arg(),
        pr_images=config["evaluation"]["reference_images"],
    log:
        f"logs/{config['name']}/reference_stats.log",
    threads: 1
    shell:
        "ig reference {params.source} --extractor {params.extractor} --pr-images {params.pr_images} "
        "--out {output.reference} > {log} 2>&1"


rule evaluate:
    input:
        samples=f"{R}/samples/{{run}}/{{milestone}}/{{guidance}}/{{labels}}/samples.json",
        reference=f"{R}/reference.npz",
        extractor=extractor_input,
    output:
        metrics=f"{R}/metrics/{{run}}/{{milestone}}/{{guidance}}/{{labels}}.json",
    params:
        folder=f"{R}/samples/{{run}}/{{milestone}}/{{guidance}}/{{labels}}",
        extractor=extractor_arg(),
        # with Inception, a missing IS (weights without the logits layer) is an error, not a null
        require_is="--require-is" if config["evaluation"]["extractor"] == "inception" else "",
    log:
        f"logs/{config['name']}/evaluate/{{run}}/{{milestone}}/{{guidance}}-{{labels}}.log",
    threads: 1
    shell:
        "ig evaluate {params.folder} --reference {input.reference} --extractor {params.extractor} "
        "{params.require_is} --out {output.metrics} > {log} 2>&1"
