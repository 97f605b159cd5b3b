"""Tiny random causal LMs built in-process, for fast tests and smoke runs.

A real byte-level BPE tokenizer is trained on a small multilingual corpus in a fraction of a
second, so tests exercise the same tokenizer code paths (offsets, padding, chat templates) as a
real model, with no download.
"""

from __future__ import annotations

import functools

_CORPUS = [
    "The quick brown fox jumps over the lazy dog. Question: Answer: A B C D 1 2 3 4",
    "Which of the following is true? The sun is a star. Water boils at 100 degrees.",
    "El rápido zorro marrón salta sobre el perro perezoso. Pregunta: Respuesta:",
    "Le renard brun rapide saute par-dessus le chien paresseux. Question : Réponse :",
    "Der schnelle braune Fuchs springt über den faulen Hund. Frage: Antwort:",
    "敏捷的棕色狐狸跳过了懒狗。问题：答案：",
    "ثعلب بني سريع يقفز فوق الكلب الكسول. سؤال: جواب:",
    "तेज़ भूरी लोमड़ी आलसी कुत्ते के ऊपर कूदती है। प्रश्न: उत्तर:",
    "Rubah coklat cepat melompati anjing malas. Pertanyaan: Jawaban:",
]

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@functools.lru_cache(maxsize=4)
def tiny_tokenizer(vocab_size: int = 512):
    """A byte-level BPE tokenizer with bos/eos/pad tokens and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|pad|>", "<|bos|>", "<|eos|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|eos|>", pad_token="<|pad|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_model(*, hidden_size: int = 64, layers: int = 2, seed: int = 0, vocab_size: int = 512):
    """(model, tokenizer): a random Llama-architecture causal LM, float32, eval mode, on CPU.

    Module names (q_proj ... down_proj) match real Llama/Qwen/Gemma models, so LoRA targets work.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer(vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    # Larger-than-default init so that the random model has confident, non-uniform preferences.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.2)
    model.eval()
    return model, tokenizer
