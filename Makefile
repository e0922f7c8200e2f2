# seq2seq-serve: every target sets up what it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 0.0.0.0
PORT ?= 8000
MODELS_DIR ?= models
PYTEST_ARGS ?=

.PHONY: help venv serve defaults test test-data lint typecheck unit e2e system-deps clean bench \
	train-default tune-default eval-default train-chat ship-chat eval-chat bench-engine

help:
	@echo "make serve   - set up, serve the committed model packages in $(MODELS_DIR) on $(HOST):$(PORT)"
	@echo "make test    - set up and run lint, type checks and the whole test suite"

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip setuptools wheel
	$(BIN)/pip install -q -e '.[export,eval,bench,test]'
	touch $@

venv: $(BIN)/.installed

# Debian packages the tests use as real peers (Prometheus server + promtool).
system-deps:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }

# Rebuilds default packages for tasks that no package in $(MODELS_DIR) serves. All three
# tasks are committed, so this matters only for an empty folder (a deployment volume).
defaults: venv
	HF_HUB_OFFLINE=1 $(BIN)/python -m training.defaults --models-dir $(MODELS_DIR)

# Serves the committed packages: no training, no data, no torch at start-up.
serve: venv
	HF_HUB_OFFLINE=1 $(BIN)/python -m service --host $(HOST) --port $(PORT) --models-dir $(MODELS_DIR)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

test: venv system-deps lint typecheck
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

# Only the tests about the real corpora in $(DATA_DIR) (they skip in make test without it).
test-data: venv
	S2S_DATA_DIR=$(abspath $(DATA_DIR)) HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -ra -m data $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache

# Demo model (issue 7): Multi30k en->de MarianMT trained here, about 90 min on 2 CPU cores.
# bf16 autocast only where the CPU has native bf16 (AMX / AVX512-BF16); elsewhere it is slower.
DATA_DIR ?= ../shared/data
TRAIN_DIR ?= .cache/train
BF16_FLAG := $(shell grep -qsE 'amx_bf16|avx512_bf16' /proc/cpuinfo && echo --bf16)
TRAIN_ARGS ?= $(BF16_FLAG) --time-budget-min 92
EVAL_ARGS ?= --beams 1,4

train-default: venv
	HF_HUB_OFFLINE=1 nice -n 5 $(BIN)/python -m training.recipes.train_marian \
	  --data-dir $(DATA_DIR)/multi30k --out $(TRAIN_DIR)/checkpoint --work-dir $(TRAIN_DIR) $(TRAIN_ARGS)

EXPORT_DEFAULT = HF_HUB_OFFLINE=1 $(BIN)/python -m export $(TRAIN_DIR)/checkpoint --task translation \
	  --name multi30k-en-de --out-dir $(TRAIN_DIR)/package --precision fp32,int8 --overwrite

# Picks the serving beam size and length penalty on the validation set (int8, our runtime)
# and writes them into the checkpoint's generation_config.json.
tune-default: venv
	$(EXPORT_DEFAULT)
	HF_HUB_OFFLINE=1 $(BIN)/python -m training.recipes.tune_decoding \
	  --package $(TRAIN_DIR)/package/multi30k-en-de --checkpoint $(TRAIN_DIR)/checkpoint \
	  --data-dir $(DATA_DIR)/multi30k

# Exports the checkpoint with fp32 and int8 into $(TRAIN_DIR)/package and scores the
# checkpoint and both variants on test_2016_flickr (the table in docs/quality.md).
eval-default: venv
	$(EXPORT_DEFAULT)
	HF_HUB_OFFLINE=1 $(BIN)/python -m export.evaluate --package $(TRAIN_DIR)/package/multi30k-en-de \
	  --source $(TRAIN_DIR)/checkpoint --src $(DATA_DIR)/multi30k/test_2016_flickr.en.gz \
	  --ref $(DATA_DIR)/multi30k/test_2016_flickr.de.gz $(EVAL_ARGS) \
	  --markdown $(TRAIN_DIR)/quality.md --json $(TRAIN_DIR)/quality.json

# Benchmarks (issue 6, docs/benchmarks.md): engine suites (Marian, T5, BART), work bound,
# load sweep, GPU suite when one is present, then the tables and plots. Slow (about 1.5 h on
# 2 cores from a fresh clone, most of it building the full-size checkpoints); BENCH_ARGS
# narrows it (python -m bench --help).
BENCH_ARGS ?=
bench: venv
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench $(BENCH_ARGS)

# Engine speed against CTranslate2 (issue 17): our runtime as the service runs it beside
# CTranslate2 int8 at both thread settings, in interleaved rounds
# (bench/rounds.py): greedy fixed and natural at batch 1-64, beam 4 at batch 1-32; the int8
# work bound beside them (bench.ceiling); then the service over HTTP against its own engine
# offline (one request of 32 / 64 texts).
BENCH_ENGINE_ROUNDS ?= 5
BENCH_ENGINE_BACKENDS ?= ours:int8:2,ct2:int8:2,ours:int8:1,ct2:int8:1
BENCH_ENGINE = HF_HUB_OFFLINE=1 $(BIN)/python -m bench.engine --family marian --size full \
	  --backends $(BENCH_ENGINE_BACKENDS) --reference "ours int8 t1" --rounds $(BENCH_ENGINE_ROUNDS)
bench-engine: venv
	$(BENCH_ENGINE) --searches greedy --stops fixed,natural --batch-sizes 1,8,32,64 \
	  --json .cache/bench/engine-rounds.json
	$(BENCH_ENGINE) --searches beam4 --stops fixed --batch-sizes 1,8,32 \
	  --json .cache/bench/engine-rounds-beam.json
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench.ceiling --engine .cache/bench/engine-rounds.json \
	  --labels "ours int8 t2,ct2 int8 t2,ours int8 t1,ct2 int8 t1" \
	  --json .cache/bench/ceiling-rounds.json
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench.http_batch --rounds $(BENCH_ENGINE_ROUNDS) \
	  --json .cache/bench/http-batch.json
	$(BIN)/python -m bench.report --engine .cache/bench/engine-rounds.json \
	  .cache/bench/engine-rounds-beam.json --section engine-rounds \
	  --ceiling .cache/bench/ceiling-rounds.json --http-batch .cache/bench/http-batch.json

# Default chat model (issue 14): MarianMT-architecture chat model trained on DailyDialog
# train (dialogue context -> next turn) on 2 CPU cores in four phases (62 + 38 + 50 + 75 min
# of wall-clock budget, about 3 h used: phases 3 and 4 stop after the one epoch that fits;
# the budgets, not step counts, bound each phase, so a busier machine trains fewer steps).
# Phase 1: 300 steps repeating the context's last turn, then replies to contexts of up to
# 3 turns (the encoder-spread probe stops a run whose encoder collapses); phase 2: another
# batch order, a lower learning rate; phase 3: the last turn
# alone as context, 15 % of the reply's input tokens hidden, so the decoder has to read the
# context (after phase 2 it was worth only 0.19 nats a token: training.recipes.context_gain);
# phase 4: one more epoch of phase 3 with 25 % hidden (val BLEU 0.38 -> 0.77).
# Then exported (fp32 + int8), int8 shipped into models/dailydialog-chat, both scored
# (docs/quality.md, chat).
CHAT_DIR ?= .cache/train-chat
CHAT_EVAL_ARGS ?= --beams 1,4 --limit 500
TRAIN_CHAT = HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m training.recipes.train_chat \
	  --data-dir $(DATA_DIR)/dailydialog

train-chat: venv
	$(TRAIN_CHAT) --out $(CHAT_DIR)/phase1/checkpoint --work-dir $(CHAT_DIR)/phase1 --time-budget-min 62
	$(TRAIN_CHAT) --out $(CHAT_DIR)/phase2/checkpoint --work-dir $(CHAT_DIR)/phase2 --time-budget-min 38 \
	  --init-from $(CHAT_DIR)/phase1/checkpoint --seed 4321 --pair-warmup-steps 0 --lr 7e-4 --warmup-steps 200
	$(TRAIN_CHAT) --out $(CHAT_DIR)/phase3/checkpoint --work-dir $(CHAT_DIR)/phase3 --time-budget-min 50 \
	  --init-from $(CHAT_DIR)/phase2/checkpoint --seed 99 --pair-warmup-steps 0 --lr 5e-4 --warmup-steps 300 \
	  --max-history-turns 1 --decoder-input-dropout 0.15
	$(TRAIN_CHAT) --out $(CHAT_DIR)/checkpoint --work-dir $(CHAT_DIR)/phase4 --time-budget-min 75 \
	  --init-from $(CHAT_DIR)/phase3/checkpoint --seed 7 --pair-warmup-steps 0 --lr 4e-4 --warmup-steps 200 \
	  --max-history-turns 1 --decoder-input-dropout 0.25

EXPORT_CHAT = HF_HUB_OFFLINE=1 $(BIN)/python -m export $(CHAT_DIR)/checkpoint --task chat \
	  --name dailydialog-chat --out-dir $(CHAT_DIR)/package --precision fp32,int8 --overwrite

ship-chat: venv
	$(EXPORT_CHAT)
	$(BIN)/python -m training.recipes.ship --package $(CHAT_DIR)/package/dailydialog-chat \
	  --out models/dailydialog-chat --keep int8 --description-file training/recipes/dailydialog-chat.txt

eval-chat: venv
	test -d $(CHAT_DIR)/package/dailydialog-chat || $(EXPORT_CHAT)
	HF_HUB_OFFLINE=1 $(BIN)/python -m training.recipes.eval_chat --package $(CHAT_DIR)/package/dailydialog-chat \
	  --data-dir $(DATA_DIR) $(CHAT_EVAL_ARGS) --markdown $(CHAT_DIR)/quality.md --json $(CHAT_DIR)/quality.json
