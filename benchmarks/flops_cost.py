"""What counting FLOPs (torch.utils.flop_counter.FlopCounterMode) costs per forward, on the
examples' torch models (issue 14). One thread, median of 30 forwards after a warm-up.

    python benchmarks/flops_cost.py
"""

import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))


def models():
    import transformers
    from test_real_models import SmallConvNet

    config = transformers.BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    ids = {"input_ids": torch.randint(0, 100, (2, 16)), "attention_mask": torch.ones(2, 16)}
    return {
        "Conv2d 1->32 k3, 1x1x28x28": (
            nn.Conv2d(1, 32, 3, padding=1),
            (torch.randn(1, 1, 28, 28),),
            {},
        ),
        "LSTM 10->10, 1x10x10": (nn.LSTM(10, 10, batch_first=True), (torch.randn(1, 10, 10),), {}),
        "Linear 784->128 + ReLU, 64x784": (
            nn.Sequential(nn.Linear(784, 128), nn.ReLU()),
            (torch.randn(64, 784),),
            {},
        ),
        "BERT 2 layers h32, 2x16 tokens": (transformers.BertModel(config), (), ids),
        "SmallConvNet (prune examples), 2x3x16x16": (
            SmallConvNet(),
            (torch.randn(2, 3, 16, 16),),
            {},
        ),
    }


def median_seconds(run, n=30):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    print("| model | forward | forward, counted | overhead | FLOPs |")
    print("|---|---|---|---|---|")
    for name, (model, args, kwargs) in models().items():
        model.eval()

        def forward(model=model, args=args, kwargs=kwargs):
            with torch.no_grad():
                model(*args, **kwargs)

        def counted(forward=forward):
            with FlopCounterMode(display=False) as counter:
                forward()
            return counter.get_total_flops()

        forward()
        flops = counted()
        plain, with_count = median_seconds(forward), median_seconds(counted)
        print(
            f"| {name} | {plain * 1e3:.3f} ms | {with_count * 1e3:.3f} ms | "
            f"{100 * (with_count - plain) / plain:+.0f}% | {flops} |"
        )


if __name__ == "__main__":
    main()
