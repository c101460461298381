// start_methods.hpp — pool suites run once per start method (fork, forkserver, spawn):
//
//   class MySuite : public mproc_test::WithStartMethod<testing::TestWithParam<mproc::StartMethod>>
//   {}; INSTANTIATE_TEST_SUITE_P(All, MySuite, mproc_test::all_start_methods(),
//                            mproc_test::start_method_name);
//   TEST_P(MySuite, X) { mproc::Pool pool(options(2)); ... }
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <mproc/pool.hpp>
#include <mproc/start_method.hpp>
#include <string>

namespace mproc_test {

// `Base` is a gtest fixture parametrized by mproc::StartMethod.
template <class Base>
class WithStartMethod : public Base {
 protected:
  // A pool of `n` workers under this test's start method.
  mproc::PoolOptions options(std::size_t n) const {
    mproc::PoolOptions o;
    o.processes = n;
    o.start_method = this->GetParam();
    return o;
  }
};

inline auto all_start_methods() {
  return testing::Values(mproc::StartMethod::kFork, mproc::StartMethod::kForkserver,
                         mproc::StartMethod::kSpawn);
}

inline std::string start_method_name(const testing::TestParamInfo<mproc::StartMethod>& info) {
  return std::string(mproc::to_string(info.param));
}

}  // namespace mproc_test
