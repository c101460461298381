// mproc/serialize/detail/eh_frame_hdr.hpp — the function starts that survive strip.
//
// A stripped module has no .symtab to check a plain function's offset against, but it keeps
// .eh_frame_hdr: exception handling binary-searches its table of FDE initial locations.
// decode_function_location (callable.hpp) uses this table then.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace mproc::detail {

// The code starts listed by an .eh_frame_hdr section (version 1, whose search table is encoded
// DW_EH_PE_datarel | DW_EH_PE_sdata4, as GNU ld, gold, lld and mold write it), as offsets from
// the module's load base; `hdr` is the section's bytes and `hdr_offset` its own offset from
// that base. Empty for a header it does not fully understand: the caller then has no table.
std::vector<std::uint64_t> eh_frame_hdr_function_starts(std::span<const unsigned char> hdr,
                                                        std::uint64_t hdr_offset);

}  // namespace mproc::detail
