/* The stb_image implementation (Debian's libstb-dev ships the header), limited to the formats
   volo_image reads. Compiled as C, without the project's warning flags (third-party code). */
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#include <stb/stb_image.h>
