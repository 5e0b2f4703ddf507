// Android library module: Kotlin API (dev.sail.Sail) + the JNI bridge built by CMake, linked
// with libsail from ports/capi (run ../build-libsail.sh first; it fills sail/prebuilt/).
// Written against AGP 8 / Kotlin 2 conventions; not built in sail's environment (README.md).
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dev.sail"
    compileSdk = 35
    // Use the NDK that built prebuilt/ (one C++ runtime per app): e.g. ndkVersion = "27.2.12479018"

    defaultConfig {
        // = ANDROID_API_LEVEL that build-libsail.sh used (llama.cpp is compiled for it)
        minSdk = 28
        consumerProguardFiles("consumer-rules.pro")
        ndk {
            // libsail is built for arm64 only (build-libsail.sh); add ABIs there first
            abiFilters += listOf("arm64-v8a")
        }
        externalNativeBuild {
            cmake {
                // libsail.a's llama.cpp uses the shared C++ runtime; AGP then packages libc++_shared.so
                arguments += listOf("-DANDROID_STL=c++_shared")
                // arguments += "-DSAIL_LINK_SHARED=ON"  // link libsail.so instead of the archive
            }
        }
    }

    externalNativeBuild {
        cmake {
            path = file("src/main/cpp/CMakeLists.txt")
            version = "3.22.1"
        }
    }

    sourceSets {
        getByName("main") {
            java.srcDirs("src/main/kotlin")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    packaging {
        jniLibs {
            // mmap'able, page-aligned native libraries inside the APK (the default since AGP 4.2 with minSdk >= 23)
            useLegacyPackaging = false
        }
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}
