# Ferry build. Plain GNU make: every .c under src/<part>/ is picked up by
# folder, so adding a module needs no edit here.
#
#   make            build all binaries
#   make check      build, build the lab guest, run every test
#   make demo       build, start a three-host lab with ferryd, run a rolling maintenance
#   make bench      run the benchmarks (bench/out/*.json)
#   make lint       banned calls + clang-format check
#   make fuzz       build the libFuzzer targets (clang) and run each briefly
#   make SANITIZE=1 ...   ASan+UBSan build (separate build dir)
#   make SANITIZE=thread ...   ThreadSanitizer build (build/tsan), for ferryd's
#                         read threads; how to run it: tests/tsan.supp

CC       ?= cc
SANITIZE ?= 0
ifeq ($(SANITIZE),1)
BUILD    ?= build/asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer
else ifeq ($(SANITIZE),thread)
BUILD    ?= build/tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
else
BUILD    ?= build
SANFLAGS :=
endif

PKGS     := libevent jansson sqlite3 libcrypto
WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wformat=2 -Wvla -Wundef
ifdef CI
WARN     += -Werror
endif
HARDEN   := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
CFLAGS   ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(HARDEN) $(SANFLAGS) $(CFLAGS) \
            -Isrc $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -lpthread
ALL_LDFLAGS := -pie -Wl,-z,relro,-z,now $(SANFLAGS) $(LDFLAGS)

# Every module goes into libferry.a; each binary adds only its main.c, so
# tests, fuzz targets and benchmarks can link any module.
PART_MODS := $(filter-out %/main.c,$(wildcard src/agent/*.c src/coord/*.c src/cli/*.c src/sim/*.c))
LIB_SRC  := $(wildcard src/util/*.c src/qmp/*.c src/core/*.c) $(PART_MODS)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libferry.a

AGENT_SRC := $(wildcard src/agent/main.c)
CLI_SRC   := $(wildcard src/cli/main.c)
SIM_SRC   := $(wildcard src/sim/main.c)
COORD_SRC := $(wildcard src/coord/main.c)

BINS := $(BUILD)/ferry-agent $(BUILD)/ferry
ifneq ($(SIM_SRC),)
BINS += $(BUILD)/ferry-sim
endif
ifneq ($(COORD_SRC),)
BINS += $(BUILD)/ferryd
endif

TESTLIB_SRC := $(wildcard tests/lib/*.c)
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%)
INTEG_SRC := $(wildcard tests/integration/test_*.c)
INTEG_BIN := $(INTEG_SRC:tests/integration/%.c=$(BUILD)/tests/integration/%)
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/tests/fuzz/%-replay)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.SECONDARY:
.PHONY: all deps check demo bench lint fuzz lab clean tests format san-tests tsan-tests
all: deps $(BINS)

deps:
	@sh scripts/bootstrap.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/ferry-agent: $(AGENT_SRC:%.c=$(BUILD)/%.o) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/ferry: $(CLI_SRC:%.c=$(BUILD)/%.o) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/ferry-sim: $(SIM_SRC:%.c=$(BUILD)/%.o) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/ferryd: $(COORD_SRC:%.c=$(BUILD)/%.o) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(TESTLIB_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/tests/integration/%: $(BUILD)/tests/integration/%.o $(TESTLIB_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/tests/fuzz/%-replay: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/replay_main.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/bench/%: $(BUILD)/bench/%.o $(TESTLIB_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

tests: all $(UNIT_BIN) $(INTEG_BIN) $(FUZZ_REPLAY) $(BENCH_BIN)

lab: deps
	@BUILD=$(BUILD) sh lab/build.sh

# The ASan+UBSan build of the unit tests and fuzz replays runs in the same
# pass (one closing line); integration tests run from the normal build.
# The ThreadSanitizer build of ferryd and of the tests of its threaded
# parts (read threads, the locked cache, the audit queue) runs in it too.
SAN_BUILD := build/asan
TSAN_BUILD := build/tsan
TSAN_TESTS := tests/unit/test_coord_store tests/unit/test_coord_migcache \
              tests/integration/test_ferryd_readers
check: tests lab
	@$(MAKE) --no-print-directory SANITIZE=1 san-tests >/dev/null
	@$(MAKE) --no-print-directory SANITIZE=thread tsan-tests >/dev/null
	@BUILD=$(BUILD) SAN_BUILD=$(SAN_BUILD) TSAN_BUILD=$(TSAN_BUILD) \
	    TSAN_TESTS="$(TSAN_TESTS)" sh tests/run.sh

san-tests: $(UNIT_BIN) $(FUZZ_REPLAY)
tsan-tests: $(BUILD)/ferryd $(TSAN_TESTS:%=$(BUILD)/%)

demo: all lab
	@BUILD=$(BUILD) sh scripts/demo.sh

bench: tests lab
	@BUILD=$(BUILD) sh bench/run.sh

lint:
	@sh scripts/lint.sh

fuzz: deps
	@sh tests/fuzz/run.sh

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
