#ifndef MESSAGE_STORE_CLIBCRYPTO_SHIM_H
#define MESSAGE_STORE_CLIBCRYPTO_SHIM_H

// OpenSSL's EVP interface: Ed25519 keys from raw bytes, one-shot signing and verification.
#include <openssl/evp.h>

#endif
