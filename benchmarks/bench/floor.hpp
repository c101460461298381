// The floors: what two forked processes joined by a socketpair can do with no library at all.
// Each function forks an echo child, measures in the parent, and reaps the child before it
// returns. Throws std::system_error when a system call fails.
#pragma once

#include <cstddef>

namespace bench {

// Blocking ping-pong of 16-byte messages; microseconds per round trip.
double socketpair_rtt_us(std::size_t round_trips);

// 16-byte messages streamed in batches (a writer thread sends, the child echoes every byte it
// reads, the parent reads the echoes); messages per second, both directions overlapped.
double socketpair_stream_msgs_per_s(std::size_t messages);

// `count` messages of `bytes` bytes, each written whole, echoed whole by the child and read
// back before the next (one in flight, as a sequential apply); payload GB/s (1e9 bytes,
// counting each payload once).
double socketpair_echo_gb_per_s(std::size_t count, std::size_t bytes);

}  // namespace bench
