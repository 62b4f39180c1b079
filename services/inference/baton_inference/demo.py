"""The demo set: tiny random-weight models for every pipeline, built with the real library classes.

With no models configured and ``-network offchain``, the inference service
builds these into ``<state>/demo/<pipeline>`` (once; later starts reuse them)
and serves them, marked ``demo``. Tokenizers are built in code from a small
vocabulary. The weights are random: the outputs are noise, but every byte of
them went through the same classes, Triton models and bus as a real model's.

Needs the inference ``models`` extra (torch, diffusers, transformers).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

__all__ = ["DEMO_MODELS", "build", "build_all", "demo_model_id"]

DEMO_PREFIX = "baton-demo/"

DEMO_MODELS: dict[str, str] = {
    "text-to-image": "baton-demo/tiny-sd",
    "image-to-image": "baton-demo/tiny-sd-img2img",
    "llm": "baton-demo/tiny-llama",
    "image-to-text": "baton-demo/tiny-blip",
    "text-to-speech": "baton-demo/tiny-vits",
    "audio-to-text": "baton-demo/tiny-whisper",
    "upscale": "baton-demo/tiny-sd-upscale",
    "image-to-video": "baton-demo/tiny-svd",
    "segment-anything-2": "baton-demo/tiny-sam2",
}
"""The demo model of each pipeline (live-video-to-video is a stream, not a Triton job)."""


def demo_model_id(pipeline: str) -> str:
    return DEMO_MODELS[pipeline]


def is_demo(model_id: str) -> bool:
    return model_id.startswith(DEMO_PREFIX)


def _byte_vocab(specials: list[str], suffix: str = "") -> dict[str, int]:
    from tokenizers.pre_tokenizers import ByteLevel  # noqa: PLC0415

    vocab = {token: n for n, token in enumerate(specials)}
    for char in sorted(ByteLevel.alphabet()):
        vocab.setdefault(char, len(vocab))
        if suffix:
            vocab.setdefault(char + suffix, len(vocab))
    return vocab


def _text_to_image(out: Path) -> None:
    import torch  # noqa: PLC0415
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel  # noqa: PLC0415
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: PLC0415

    torch.manual_seed(0)
    vocab = _byte_vocab(["<|startoftext|>", "!", "<|endoftext|>"], suffix="</w>")
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], pad_token="!", model_max_length=77)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, pad_token_id=1, eos_token_id=2, vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
        num_attention_heads=2, num_hidden_layers=2, max_position_embeddings=77, projection_dim=16,
    ))
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, norm_num_groups=4, attention_head_dim=2,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=16,
    )
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    ).save_pretrained(out)


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _llm(out: Path) -> None:
    import torch  # noqa: PLC0415
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: PLC0415
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: PLC0415

    torch.manual_seed(0)
    specials = ["<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    vocab = _byte_vocab(specials)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        additional_special_tokens=specials[3:],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=512, bos_token_id=0, eos_token_id=1, pad_token_id=2,
    ))
    model.generation_config = GenerationConfig(bos_token_id=0, eos_token_id=1, pad_token_id=2)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _image_to_text(out: Path) -> None:
    import torch  # noqa: PLC0415
    from transformers import (  # noqa: PLC0415
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    torch.manual_seed(0)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *"abcdefghijklmnopqrstuvwxyz", "a", "photo", "of",
             "cat", "dog", "the", "in", "on", "."]
    vocab = {w: n for n, w in enumerate(dict.fromkeys(words))}
    tokenizer = BertTokenizer(vocab=vocab, bos_token="[DEC]", model_max_length=64)
    config = BlipConfig(
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        text_config={"vocab_size": len(vocab), "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 64, "bos_token_id": vocab["[DEC]"],
                     "pad_token_id": 0, "sep_token_id": vocab["[SEP]"], "eos_token_id": vocab["[SEP]"]},
        projection_dim=16,
    )
    model = BlipForConditionalGeneration(config)
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)


def _text_to_speech(out: Path) -> None:
    import torch  # noqa: PLC0415
    from transformers import VitsConfig, VitsModel, VitsTokenizer  # noqa: PLC0415

    torch.manual_seed(0)
    chars = ["<pad>", "<unk>", " ", *"abcdefghijklmnopqrstuvwxyz'.,?!-"]
    vocab_file = out / "vocab.json"
    out.mkdir(parents=True, exist_ok=True)
    vocab_file.write_text(json.dumps({c: n for n, c in enumerate(chars)}))
    tokenizer = VitsTokenizer(str(vocab_file), pad_token="<pad>", unk_token="<unk>", add_blank=True, phonemize=False)
    config = VitsConfig(
        vocab_size=len(chars), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32,
        flow_size=16, spectrogram_bins=33, upsample_initial_channel=16, upsample_rates=[4, 4],
        upsample_kernel_sizes=[8, 8], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
        prior_encoder_num_flows=1, prior_encoder_num_wavenet_layers=1, posterior_encoder_num_wavenet_layers=1,
        duration_predictor_num_flows=1, duration_predictor_filter_channels=16, depth_separable_num_layers=1,
        sampling_rate=16000,
    )
    VitsModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)


def _clip_text(vocab_size: int) -> object:
    from transformers import CLIPTextConfig, CLIPTextModel  # noqa: PLC0415

    return CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, pad_token_id=1, eos_token_id=2, vocab_size=vocab_size, hidden_size=16, intermediate_size=32,
        num_attention_heads=2, num_hidden_layers=2, max_position_embeddings=77, projection_dim=16,
    ))


def _audio_to_text(out: Path) -> None:
    """Whisper (English-only layout): byte-level BPE vocabulary, its special and 1501 timestamp tokens."""
    import torch  # noqa: PLC0415
    from tokenizers.pre_tokenizers import ByteLevel  # noqa: PLC0415
    from transformers import (  # noqa: PLC0415
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    torch.manual_seed(0)
    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>",
                "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
    stamps = [f"<|{n * 0.02:.2f}|>" for n in range(1501)]
    vocab: dict[str, int] = {}
    for token in [*sorted(ByteLevel.alphabet()), *specials, *stamps]:
        vocab.setdefault(token, len(vocab))
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[], additional_special_tokens=specials[1:],
                                 pad_token="<|endoftext|>", model_max_length=64)
    tokenizer.add_tokens(stamps)  # the timestamp tokens come after the last special one, as Whisper's do
    eot, sot = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"]
    model = WhisperForConditionalGeneration(WhisperConfig(
        vocab_size=len(vocab), num_mel_bins=80, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, d_model=16, encoder_ffn_dim=32, decoder_ffn_dim=32, max_source_positions=1500,
        max_target_positions=64, pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, decoder_start_token_id=sot,
    ))
    # the random decoder may only write lower-case letters and spaces: the noise stays readable
    readable = {vocab[c] for c in ByteLevel.alphabet() if c.isascii() and c.isalpha() and c.islower()} | {vocab["Ġ"]}
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        no_timestamps_token_id=vocab["<|notimestamps|>"], is_multilingual=False, max_initial_timestamp_index=50,
        max_length=64, alignment_heads=[[0, 0], [0, 1]], begin_suppress_tokens=[eot],
        suppress_tokens=sorted(n for c, n in vocab.items() if len(c) == 1 and n not in readable),
    )
    model.save_pretrained(out)
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer).save_pretrained(out)


def _upscale(out: Path) -> None:
    """StableDiffusionUpscalePipeline: a three-level VAE (x4) and a UNet taking the noised low-res image."""
    import torch  # noqa: PLC0415
    from diffusers import (  # noqa: PLC0415
        AutoencoderKL,
        DDIMScheduler,
        DDPMScheduler,
        StableDiffusionUpscalePipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTokenizer  # noqa: PLC0415

    torch.manual_seed(0)
    vocab = _byte_vocab(["<|startoftext|>", "!", "<|endoftext|>"], suffix="</w>")
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], pad_token="!", model_max_length=77)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16, 16), layers_per_block=1, sample_size=8, in_channels=7, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
        norm_num_groups=4, attention_head_dim=2, use_linear_projection=True,
        only_cross_attention=(True, True, False), num_class_embeds=351,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3, sample_size=16,
    )
    StableDiffusionUpscalePipeline(
        vae=vae, text_encoder=_clip_text(len(vocab)), tokenizer=tokenizer, unet=unet,
        low_res_scheduler=DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.0001, beta_end=0.02),
        scheduler=DDIMScheduler(prediction_type="v_prediction", beta_schedule="scaled_linear", beta_start=0.0001,
                                beta_end=0.02, clip_sample=False, set_alpha_to_one=False, steps_offset=1),
        safety_checker=None, feature_extractor=None, watermarker=None, max_noise_level=350,
    ).save_pretrained(out)


def _image_to_video(out: Path) -> None:
    """StableVideoDiffusionPipeline; its image encoder takes 224-pixel images (the pipeline resizes to 224)."""
    import torch  # noqa: PLC0415
    from diffusers import (  # noqa: PLC0415
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection  # noqa: PLC0415

    torch.manual_seed(0)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), cross_attention_dim=16,
        num_attention_heads=2, projection_class_embeddings_input_dim=24, addition_time_embed_dim=8, num_frames=6,
    )
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
    )
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=16, projection_dim=16, num_hidden_layers=1, num_attention_heads=2, image_size=224,
        intermediate_size=32, patch_size=32,
    ))
    scheduler = EulerDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, interpolation_type="linear",
        prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002, steps_offset=1,
        timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True,
    )
    StableVideoDiffusionPipeline(
        vae=vae, image_encoder=image_encoder, unet=unet, scheduler=scheduler,
        feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
    ).save_pretrained(out)


def _segment_anything_2(out: Path) -> None:
    """Sam2Model at 64-pixel input (4 x 4 image embedding, 16 x 16 low-res masks) and its processor settings."""
    import torch  # noqa: PLC0415
    from transformers import Sam2Config, Sam2Model  # noqa: PLC0415

    torch.manual_seed(0)
    config = Sam2Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam2_hiera_det_model", "hidden_size": 8, "num_attention_heads": 1,
                "image_size": [64, 64], "blocks_per_stage": [1, 1, 2, 1], "embed_dim_per_stage": [8, 16, 32, 64],
                "num_attention_heads_per_stage": [1, 1, 1, 1], "window_size_per_stage": [4, 2, 2, 2],
                "global_attention_blocks": [3], "window_positional_embedding_background_size": [2, 2],
            },
            "backbone_channel_list": [64, 32, 16, 8], "backbone_feature_sizes": [[16, 16], [8, 8], [4, 4]],
            "fpn_hidden_size": 16,
        },
        prompt_encoder_config={"hidden_size": 16, "image_size": 64, "patch_size": 16, "mask_input_channels": 4},
        mask_decoder_config={"hidden_size": 16, "mlp_dim": 32, "num_attention_heads": 2, "iou_head_hidden_dim": 16},
    )
    Sam2Model(config).save_pretrained(out)
    # Sam2ImageProcessor's settings, as a hub checkpoint carries them (the processor itself needs torchvision)
    (out / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Sam2ImageProcessor", "size": {"height": 64, "width": 64},
        "mask_size": {"height": 16, "width": 16}, "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
    }))


BUILDERS: dict[str, Callable[[Path], None]] = {
    "text-to-image": _text_to_image,
    "image-to-image": _text_to_image,  # the same Stable Diffusion parts, through AutoPipelineForImage2Image
    "llm": _llm,
    "image-to-text": _image_to_text,
    "text-to-speech": _text_to_speech,
    "audio-to-text": _audio_to_text,
    "upscale": _upscale,
    "image-to-video": _image_to_video,
    "segment-anything-2": _segment_anything_2,
}


def build(pipeline: str, root: Path) -> Path:
    """The demo model of ``pipeline`` under ``root``, built unless a complete build is there."""
    out = root / pipeline
    done = out / ".baton-demo"
    if done.is_file():
        return out
    tmp = root / f".{pipeline}.building.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    BUILDERS[pipeline](tmp)
    (tmp / ".baton-demo").write_text(json.dumps({"model_id": DEMO_MODELS[pipeline]}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def build_all(root: Path, pipelines: list[str] | None = None) -> dict[str, Path]:
    """Build (or reuse) every demo model; ``{pipeline: folder}``."""
    root.mkdir(parents=True, exist_ok=True)
    return {p: build(p, root) for p in (pipelines or list(BUILDERS))}


if __name__ == "__main__":
    import sys

    for pipeline, path in build_all(Path(sys.argv[1])).items():
        print(pipeline, path)
