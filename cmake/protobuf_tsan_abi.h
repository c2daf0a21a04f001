// File: protobuf_tsan_abi.h
//
// Force-included (`-include`) first into every llmload translation unit of a
// ThreadSanitizer build (LLMLOAD_SANITIZE=thread, see CMakeLists.txt); no
// source file includes it.
//
// Why: protobuf 3.21's <google/protobuf/map_field.h> gives
// internal::MapFieldBase two extra members (seq1_, seq2_, for protobuf's own
// map race check) whenever __SANITIZE_THREAD__ is defined, and puts them
// before the class's other members. Debian's libprotobuf.so and the generated
// llmload_proto library are compiled without -fsanitize=thread, so they lay
// out every message that has a map field (v1::Target with its `headers`, and
// everything after it) 8 bytes shorter than instrumented code expects. The
// instrumented worker then read RunSpec fields at the wrong offsets: a target
// protocol of garbage (sessions of the wrong protocol), map iteration past the
// object's end, and TSan "heap-use-after-free" reports in
// LoopShard::StartSession on the freed neighbour of the Target object, none of
// which a build without TSan (ASan included) has.
//
// Including map_field.h here, with the macro hidden, fixes the layout the
// shared library was built with for the whole build; the header's include
// guard keeps every later include of it from seeing the other layout. Only
// protobuf's debug check of concurrent map access goes; TSan still sees every
// access the instrumented (inline) map code makes.

#pragma once

#ifdef __cplusplus
#pragma push_macro("__SANITIZE_THREAD__")
#undef __SANITIZE_THREAD__
#include <google/protobuf/map_field.h>
#pragma pop_macro("__SANITIZE_THREAD__")
#endif
