/* libFuzzer target: the PNG reader of image to image's init images and masks (io/png.h),
 * which reads untrusted files and, through `safesd serve`'s /sdapi/v1/img2img, untrusted
 * request bodies.
 *
 * Each input is decoded from memory. It must either succeed with a size in 1..65536 a side
 * and a buffer of exactly width × height × 3 bytes (every byte is read, so ASan sees an
 * overrun), or fail with SD_E_FORMAT or SD_E_NOMEM, return no buffer and set a one-line
 * message naming the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/png.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *rgb = (uint8_t *)1;
  int w = -1, h = -1;
  int rc = sd_png_decode_rgb8(data, size, "fuzz.png", &rgb, &w, &h);
  if (rc == SD_OK) {
    CHECK(rgb != NULL && w >= 1 && h >= 1 && w <= 65536 && h <= 65536);
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) sum += rgb[i];
    (void)sum;
    free(rgb);
  } else {
    CHECK(rc == SD_E_FORMAT || rc == SD_E_NOMEM);
    CHECK(rgb == NULL);
    const char *msg = sd_errmsg();
    CHECK(msg && strstr(msg, "fuzz.png") && !strchr(msg, '\n'));
  }
  return 0;
}
