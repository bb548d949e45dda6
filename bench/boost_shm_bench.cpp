// SPDX-License-Identifier: MIT
//
// The churn of bench/shared_bench.c on Boost.Interprocess managed_shared_memory (its default
// best-fit allocator behind one interprocess mutex), with 1 and 2 processes, plus named-object
// lookup (segment.find). Same random sequence, same reporting, for comparison.
// Usage: boost_shm_bench [steps] [--json]
#include <boost/interprocess/managed_shared_memory.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <sys/wait.h>
#include <unistd.h>

namespace bip = boost::interprocess;

static const int SLOTS = 4096;
static const int SEQ = 1 << 16;
static uint32_t seq_slot[SEQ];
static uint16_t seq_size[SEQ];

static double now_s()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void make_sequence()
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < SEQ; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        seq_slot[i] = (uint32_t)(x % SLOTS);
        uint32_t r = (uint32_t)(x >> 32);
        seq_size[i] = (uint16_t)(r % 8 ? 16 + r % 240 : 256 + r % 768);
    }
}

static long churn(bip::managed_shared_memory &seg, long steps)
{
    static void *slot[SLOTS];
    long allocs = 0;
    for (long i = 0; i < steps; i++) {
        uint32_t k = seq_slot[i & (SEQ - 1)];
        if (slot[k]) {
            seg.deallocate(slot[k]);
            slot[k] = nullptr;
        } else {
            slot[k] = seg.allocate(seq_size[i & (SEQ - 1)]);
            *(char *)slot[k] = 1;
            allocs++;
        }
    }
    for (int k = 0; k < SLOTS; k++)
        if (slot[k]) {
            seg.deallocate(slot[k]);
            slot[k] = nullptr;
        }
    return allocs;
}

int main(int argc, char **argv)
{
    long steps = 2000000;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--json") == 0)
            json = true;
        else
            steps = std::atol(argv[i]);
    }
    make_sequence();
    char name[64];
    std::snprintf(name, sizeof name, "boostbench%d", (int)getpid());
    bip::shared_memory_object::remove(name);
    double ns1 = 1e30, pps2 = 0, ns_lookup = 0;
    {
        bip::managed_shared_memory seg(bip::create_only, name, (size_t)256 << 20);
        churn(seg, steps / 4);
        for (int r = 0; r < 3; r++) {
            double t = now_s();
            long pairs = churn(seg, steps);
            t = now_s() - t;
            if (t * 1e9 / (double)pairs < ns1) ns1 = t * 1e9 / (double)pairs;
        }
        // two processes, each timing its own churn
        int go[2], res[2];
        if (pipe(go) || pipe(res)) return 1;
        pid_t kids[2];
        for (int i = 0; i < 2; i++) {
            kids[i] = fork();
            if (kids[i] == 0) {
                close(go[1]);
                bip::managed_shared_memory s2(bip::open_only, name);
                churn(s2, steps / 4);
                char c;
                if (read(go[0], &c, 1) != 0) _exit(1);
                double r[2] = {now_s(), 0};
                r[1] = (double)churn(s2, steps);
                r[0] = now_s() - r[0];
                if (write(res[1], r, sizeof r) != (ssize_t)sizeof r) _exit(1);
                _exit(0);
            }
        }
        close(go[0]);
        close(res[1]);
        usleep(200000);
        close(go[1]);
        double pairs = 0, longest = 0, r[2];
        for (int i = 0; i < 2; i++) {
            if (read(res[0], r, sizeof r) != (ssize_t)sizeof r) return 1;
            pairs += r[1];
            longest = r[0] > longest ? r[0] : longest;
        }
        for (int i = 0; i < 2; i++)
            waitpid(kids[i], nullptr, 0);
        pps2 = pairs / longest;
        double t;
        // named objects
        char obj[32];
        for (int i = 0; i < 500; i++) {
            std::snprintf(obj, sizeof obj, "object-%d", i);
            seg.construct<char>(obj)[64]();
        }
        long lookups = 1000000;
        t = now_s();
        for (long i = 0; i < lookups; i++) {
            std::snprintf(obj, sizeof obj, "object-%d", (int)(seq_slot[i & (SEQ - 1)] % 500u));
            if (!seg.find<char>(obj).first) return 1;
        }
        ns_lookup = (now_s() - t) * 1e9 / (double)lookups;
    }
    bip::shared_memory_object::remove(name);
    double pps1 = 1e9 / ns1;
    if (json)
        std::printf("{\"boost_ns_per_pair\":%.1f,\"boost_1proc_pairs_per_s\":%.0f,"
                    "\"boost_2proc_pairs_per_s\":%.0f,\"boost_lookup_ns\":%.1f}\n",
                    ns1, pps1, pps2, ns_lookup);
    else {
        std::printf("boost managed_shared_memory, 1 process  %8.1f ns per alloc+free (%.2f M/s)\n",
                    ns1, pps1 / 1e6);
        std::printf("boost managed_shared_memory, 2 processes %7.2f M pairs/s total\n", pps2 / 1e6);
        std::printf("boost named object lookup (500 objects)  %8.1f ns\n", ns_lookup);
    }
    return 0;
}
