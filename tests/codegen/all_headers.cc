// Every generated .arpc.h of tests/codegen/proto in one C++ translation unit, compiled
// with -Wall -Wextra -Werror -Wpedantic (the codegen_cxx test): the generated API must
// be usable from C++, protoc-c's headers included (after arpc_protobuf_generate()'s
// repair of keyword-named methods).
#include "arpc/test/common/types.arpc.h"
#include "arpc/test/cpkg/renamed.arpc.h"
#include "arpc/test/svc/all.arpc.h"

// A handler table filled from C++ with a function of the generated type.
static int get_shape(arpc_request *, const Arpc__Test__Common__Point *, Arpc__Test__Common__Shape *,
                     void *)
{
    return 0;
}

int main()
{
    arpc__test__svc__v1__shape_store__arpc_handlers h = {};
    arpc__test__svc__v1__keywords__arpc_handlers k = {};

    h.get_shape = get_shape;
    k.return_ = nullptr;
    return h.get_shape == nullptr || k.int_ != nullptr;
}
