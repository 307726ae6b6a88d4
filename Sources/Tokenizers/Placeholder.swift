// placeholder until the tokenizer module lands
