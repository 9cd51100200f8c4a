// swiftc 6.3.1 (swift-6.3.1-RELEASE, x86_64 Linux) crashes compiling this file ("Bad pointer
// dereference" in swift-frontend), with -swift-version 5 or 6, -Onone or -O:
//
//     swiftc -parse-as-library -c scripts/compiler-crashes/catch-where-after-loop.swift -o /tmp/x.o
//
// All three are needed: a function with a loop (for, for-await or while) before a `do`, a call
// with typed throws in the `do`, and a `catch` with a `where` clause (so the catch is not
// exhaustive and the error must be rethrown). Without the loop, without the `where`, or with an
// untyped callee, it compiles. The store's README shows the pattern that avoids it.
struct E: Error { var code: Int }

func append() throws(E) {}

func f() throws {
    for n in [1, 2] { print(n) }
    do {
        try append()
    } catch where error.code == 1 {
        print(error)
    }
}
