// Plugin versions for the standalone build; an app that includes :sail uses its own.
// Unverified here (no Gradle/Android SDK in sail's environment): pick versions your Android
// Studio supports; AGP 8.x needs Gradle 8.x and JDK 17.
plugins {
    id("com.android.library") version "8.7.3" apply false
    id("org.jetbrains.kotlin.android") version "2.0.21" apply false
}
